//! Access control over the real SSH path: a grant for one action runs nothing else. Legacy scp
//! is parsed strictly (G1), SFTP sessions keep to the directions their grant allows and to one
//! account (G2), and the strictest of several allowing grants applies (G3).

use crate::policy::{only_grant, remove_grants};
use crate::ssh::{Lab, text};
use rampart_testkit::output_with_input;
use serde_json::Value;
use std::process::{Command, Output};

/// `scp -O` through the lab's Rampart with `args`.
fn legacy_scp(lab: &Lab, args: &[&str]) -> Output {
    Command::new("scp")
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-O", "-P", &lab.port()])
        .args(args)
        .output()
        .unwrap()
}

/// `USER@bastion:PATH` as scp takes it.
fn remote(user: &str, path: &str) -> String {
    format!("{user}@127.0.0.1:{path}")
}

#[test]
fn an_scp_grant_refuses_commands_dressed_as_scp_and_audits_them_as_exec() {
    let Some(lab) = Lab::start() else { return };
    only_grant(&lab, &["--actions", "scp"]);
    let marker = lab.r.scratch().join("marker");
    let touch = format!("touch {}", marker.display());
    let attempts = [
        format!("scp ; {touch}"),
        format!("scp -t /tmp; {touch}"),
        format!("scp -t \"$({touch})\""),
        format!("scp -t '/tmp/x\n{touch}'"),
        format!("scp -t /tmp/x\n{touch}"),
        format!("scp -S /bin/sh -t x; {touch}"),
        "scp -S /bin/sh -t x".to_owned(),
        format!("scp -o ProxyCommand='{touch}' -t x"),
        format!("scp -t `{touch}`"),
        format!("scp -h 2>/dev/null; echo INJECTED; {touch}"),
    ];
    for (number, attempt) in attempts.iter().enumerate() {
        let out = lab.ssh(&lab.direct(), attempt, b"");
        let stderr = text(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{attempt:?} must fail: {stderr}"
        );
        assert!(
            stderr.starts_with("rampart: ") && stderr.contains("for exec"),
            "{attempt:?}: {stderr}"
        );
        assert!(
            !text(&out.stdout).contains("INJECTED"),
            "{attempt:?} ran on the target"
        );
        assert!(!marker.exists(), "{attempt:?} ran on the target");
        let denied = lab.events("access_denied");
        assert_eq!(denied.len(), number + 1, "{attempt:?}: {denied:?}");
        let event = &denied.last().unwrap()["event"];
        assert_eq!(event["action"], "exec", "{event}");
        assert!(
            event["reason"]
                .as_str()
                .unwrap()
                .contains("not a plain scp transfer"),
            "{event}"
        );
    }
    // Nothing started on the target at all.
    assert!(lab.sessions().is_empty(), "{:?}", lab.sessions());

    // With `exec`, the same text is an ordinary command: it runs, and is recorded as one.
    only_grant(&lab, &["--actions", "exec"]);
    let out = lab.ssh(&lab.direct(), "scp ; echo ran-as-exec", b"");
    assert!(
        text(&out.stdout).contains("ran-as-exec"),
        "{}",
        text(&out.stderr)
    );
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["kind"], "exec");
    assert_eq!(sessions[0]["recorded"], true);
}

#[test]
fn legacy_scp_still_works_both_ways_and_quoted_paths_arrive_unchanged() {
    let Some(lab) = Lab::start() else { return };
    only_grant(&lab, &["--actions", "scp"]);
    let dir = lab.r.scratch().join("transfers");
    std::fs::create_dir_all(dir.join("with space")).unwrap();
    let source = dir.join("source");
    let content = b"the bytes of a file\n".repeat(1000);
    std::fs::write(&source, &content).unwrap();
    let user = lab.direct();
    // Legacy scp passes the remote path to the target's shell: the user quotes it.
    let cases: [(&str, String, &str); 4] = [
        (
            "spaces, escaped",
            format!("{}/with\\ space/escaped\\ name", dir.display()),
            "with space/escaped name",
        ),
        (
            "spaces, single-quoted",
            format!("'{}/with space/a b'", dir.display()),
            "with space/a b",
        ),
        (
            "a quote, double-quoted",
            format!("\"{}/it's\"", dir.display()),
            "it's",
        ),
        (
            "a quote, escaped",
            format!("'{}/q'\\''uote'", dir.display()),
            "q'uote",
        ),
    ];
    for (what, quoted, name) in &cases {
        let out = legacy_scp(&lab, &[source.to_str().unwrap(), &remote(&user, quoted)]);
        assert!(
            out.status.success(),
            "upload, {what}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), content, "{what}");
        let back = dir.join(format!("back-{}", name.replace(['/', ' ', '\''], "_")));
        // The client compares the names it receives with the path it asked for, quotes and all:
        // `-T` turns that off (OpenSSH's scp needs it for quoted remote paths, Rampart or not).
        let out = legacy_scp(
            &lab,
            &["-T", &remote(&user, quoted), back.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "download, {what}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read(&back).unwrap(), content, "{what}");
    }
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 8, "{sessions:?}");
    assert!(sessions.iter().all(|s| s["kind"] == "scp"), "{sessions:?}");
    // The evidence names the path as it arrived.
    let transfers = lab.events("file_transferred");
    let spaced = dir.join("with space/a b");
    for direction in ["upload", "download"] {
        assert!(
            transfers
                .iter()
                .any(|e| e["event"]["path"] == spaced.to_str().unwrap()
                    && e["event"]["direction"] == direction),
            "{direction}: {transfers:?}"
        );
    }
    assert!(lab.events("access_denied").is_empty());
}

/// Runs one sftp command as `user`; sftp's batch mode fails on the first command that fails.
fn sftp(lab: &Lab, user: &str, command: &str) -> Output {
    output_with_input(
        Command::new("sftp")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-P", &lab.port(), "-b", "-"])
            .arg(format!("{user}@127.0.0.1")),
        format!("{command}\n").as_bytes(),
    )
}

/// A directory on the target with a file and a subdirectory, and a local file to upload.
struct Tree {
    dir: std::path::PathBuf,
    local: std::path::PathBuf,
    content: Vec<u8>,
}

impl Tree {
    fn new(lab: &Lab) -> Self {
        let dir = lab.r.scratch().join("served");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(dir.join("data"), &content).unwrap();
        let local = lab.r.scratch().join("local");
        std::fs::write(&local, b"local bytes\n").unwrap();
        Self {
            dir,
            local,
            content,
        }
    }

    fn at(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The names in the served directory, sorted.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn assert_permission_denied(out: &Output, what: &str) {
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{what} must fail: {stderr}");
    assert!(stderr.contains("Permission denied"), "{what}: {stderr}");
}

fn refusals(lab: &Lab, action: &str) -> Vec<Value> {
    lab.events("access_denied")
        .into_iter()
        .filter(|e| e["event"]["action"] == action)
        .collect()
}

#[test]
fn a_read_only_sftp_grant_reads_and_lists_but_never_writes() {
    let Some(lab) = Lab::start() else { return };
    only_grant(&lab, &["--actions", "sftp_read"]);
    let tree = Tree::new(&lab);
    let user = lab.direct();
    let got = lab.r.scratch().join("got");
    let out = sftp(
        &lab,
        &user,
        &format!("get {} {}", tree.at("data"), got.display()),
    );
    assert!(out.status.success(), "get: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), tree.content);
    let out = sftp(&lab, &user, &format!("ls -l {}", tree.dir.display()));
    assert!(out.status.success(), "ls: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("data"), "{}", text(&out.stdout));

    let before = tree.listing();
    let writes = [
        format!("put {} {}", tree.local.display(), tree.at("new")),
        format!("put {} {}", tree.local.display(), tree.at("data")),
        format!("rm {}", tree.at("data")),
        format!("rename {} {}", tree.at("data"), tree.at("moved")),
        format!("mkdir {}", tree.at("made")),
        format!("rmdir {}", tree.at("sub")),
        format!("chmod 600 {}", tree.at("data")),
        format!("ln -s {} {}", tree.at("data"), tree.at("link")),
    ];
    for write in &writes {
        assert_permission_denied(&sftp(&lab, &user, write), write);
    }
    assert_eq!(tree.listing(), before, "the target is unchanged");
    assert_eq!(std::fs::read(tree.dir.join("data")).unwrap(), tree.content);
    // Every refusal is audited, with what was refused.
    let refused = refusals(&lab, "sftp_write");
    assert!(refused.len() >= writes.len(), "{refused:?}");
    let reasons: Vec<&str> = refused
        .iter()
        .map(|e| e["event"]["reason"].as_str().unwrap())
        .collect();
    for operation in [
        "open for writing",
        "remove",
        "rename",
        "mkdir",
        "rmdir",
        "setstat",
        "symlink",
    ] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("SFTP ") && r.contains(operation)),
            "{operation}: {reasons:?}"
        );
    }
    assert!(
        reasons.iter().any(|r| r.contains(&tree.at("data"))),
        "{reasons:?}"
    );
    let sessions = lab.sessions();
    assert!(sessions.iter().all(|s| s["kind"] == "sftp"), "{sessions:?}");
}

#[test]
fn a_write_only_sftp_grant_uploads_but_never_reads() {
    let Some(lab) = Lab::start() else { return };
    only_grant(&lab, &["--actions", "sftp_write"]);
    let tree = Tree::new(&lab);
    let user = lab.direct();
    let out = sftp(
        &lab,
        &user,
        &format!("put {} {}", tree.local.display(), tree.at("up")),
    );
    assert!(out.status.success(), "put: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read(tree.dir.join("up")).unwrap(),
        b"local bytes\n"
    );
    let out = sftp(&lab, &user, &format!("mkdir {}", tree.at("made")));
    assert!(out.status.success(), "mkdir: {}", text(&out.stderr));
    assert!(tree.dir.join("made").is_dir());

    let got = lab.r.scratch().join("got");
    assert_permission_denied(
        &sftp(
            &lab,
            &user,
            &format!("get {} {}", tree.at("data"), got.display()),
        ),
        "get",
    );
    assert!(
        std::fs::read(&got).unwrap_or_default().is_empty(),
        "nothing was read"
    );
    assert_permission_denied(
        &sftp(&lab, &user, &format!("ls {}", tree.dir.display())),
        "ls",
    );
    let refused = refusals(&lab, "sftp_read");
    assert!(refused.len() >= 2, "{refused:?}");
}

#[test]
fn an_sftp_session_uses_one_account_never_the_directions_of_two() {
    let Some(lab) = Lab::start() else { return };
    remove_grants(&lab);
    // deploy may read, the target's own login may write: no one account allows both.
    lab.r.ok(&[
        "account",
        "add",
        "deploy@web-01",
        "--key-file",
        lab.r.scratch().join("target").to_str().unwrap(),
    ]);
    let grant = |account: &str, actions: &str| {
        lab.r.ok(&[
            "grant",
            "add",
            "--user",
            "alice",
            "--asset",
            "web-01",
            "--account",
            account,
            "--actions",
            actions,
        ]);
    };
    grant("deploy", "sftp_read");
    grant(&lab.login, "sftp_write");
    let tree = Tree::new(&lab);
    let out = sftp(&lab, "alice@web-01", &format!("ls {}", tree.dir.display()));
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("several accounts"), "{stderr}");
    assert!(
        lab.sessions().is_empty(),
        "no session opened: {:?}",
        lab.sessions()
    );
    let denied = lab.events("access_denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["event"]["action"], "sftp_read,sftp_write");

    // Naming the writing account opens it for writing only: its grant does not read.
    let direct = lab.direct();
    let out = sftp(&lab, &direct, &format!("ls {}", tree.dir.display()));
    assert_permission_denied(&out, "ls as the writing account");
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["account"], lab.login);
}

#[test]
fn the_strictest_of_several_allowing_grants_applies_and_explain_shows_it() {
    let Some(lab) = Lab::start() else { return };
    remove_grants(&lab);
    // The permissive grant is the older one: creation order must not decide.
    let lax = lab.r.json(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--no-recording",
        "--idle-timeout",
        "2h",
    ]);
    lab.r.json(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--idle-timeout",
        "10m",
        "--max-duration",
        "8h",
    ]);
    let out = lab.ssh(&lab.direct(), "echo watched", b"");
    assert_eq!(text(&out.stdout), "watched\n", "{}", text(&out.stderr));
    let sessions = lab.sessions();
    assert_eq!(sessions[0]["recorded"], true, "{sessions:?}");
    let id = sessions[0]["id"].as_str().unwrap();
    let cast = lab
        .r
        .data_dir()
        .join("recordings")
        .join(format!("{id}.cast"));
    assert!(std::fs::read_to_string(&cast).unwrap().contains("watched"));

    let explained = lab.r.json(&[
        "grant", "explain", "--user", "alice", "--asset", "web-01", "--action", "exec",
    ]);
    let report = &explained[0];
    assert_eq!(report["decision"], "allow");
    assert_eq!(
        report["grant"], lax["id"],
        "the first allowing grant names the session"
    );
    let rules = &report["rules"];
    assert_eq!(rules["record"], true, "{rules}");
    assert_eq!(rules["idle_timeout"], "10m", "{rules}");
    assert_eq!(rules["idle_timeout_default_applies"], false, "{rules}");
    assert_eq!(rules["max_duration"], "8h", "{rules}");
    // The lax grant sets no maximum: the node's default stays in force beside the 8h.
    assert_eq!(rules["max_duration_default_applies"], true, "{rules}");
    let human = lab.r.ok(&[
        "grant", "explain", "--user", "alice", "--asset", "web-01", "--action", "exec",
    ]);
    assert!(
        human.contains(
            "session rules (the strictest of the allowing grants): recorded; idle timeout: 10m; \
             maximum duration: 8h (or the node's default, if shorter)"
        ),
        "{human}"
    );
}
