//! Cancel requests. Rampart gives every client its own process id and secret key
//! (`BackendKeyData`) and keeps which target backend they stand for; a `CancelRequest` with
//! a key Rampart gave is sent to that target with the target's key, any other is dropped.
//!
//! INVARIANT: an entry lives exactly as long as its session (removed by the session's end), so
//! the map holds at most one entry per live session.

use rampart_core::Asset;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which target backend a client's key stands for.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub asset: Asset,
    pub pid: u32,
    pub key: u32,
}

#[derive(Debug, Default)]
pub struct CancelMap {
    entries: Mutex<HashMap<(u32, u32), CancelTarget>>,
}

impl CancelMap {
    /// Registers `target` under a fresh random key; `None` if no randomness.
    pub fn register(&self, target: CancelTarget) -> Option<(u32, u32)> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).ok()?;
        let [a, b, c, d, e, f, g, h] = raw;
        // Process ids are positive in PostgreSQL.
        let pid = u32::from_be_bytes([a & 0x7f, b, c, d]).max(1);
        let key = u32::from_be_bytes([e, f, g, h]);
        let mut entries = self.entries.lock().ok()?;
        entries.insert((pid, key), target);
        Some((pid, key))
    }

    pub fn remove(&self, pid: u32, key: u32) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(pid, key));
        }
    }

    pub fn lookup(&self, pid: u32, key: u32) -> Option<CancelTarget> {
        self.entries.lock().ok()?.get(&(pid, key)).cloned()
    }
}
