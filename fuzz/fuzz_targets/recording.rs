#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rampart_audit::fuzzing::recording(data);
});
