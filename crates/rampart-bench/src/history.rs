//! The benchmark as a regression guard: every run appends its ratios, with the date and the
//! commit, to a history file (JSON lines), and says which ratio moved by more than 10% against
//! the last run recorded there.

use anyhow::Context;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// How far a ratio may move against the last run before the report calls it out.
const MOVED: f64 = 0.10;

/// One ratio of a run: a case, what it compares, and the value.
#[derive(Debug, Clone)]
pub struct Ratio {
    pub case: String,
    pub what: &'static str,
    pub value: f64,
}

/// Appends this run to `file` and prints every ratio that moved by more than 10% against the
/// previous run in the file (or that the file had no run to compare with).
pub fn record(file: &Path, quick: bool, ratios: &[Ratio]) -> anyhow::Result<()> {
    let previous = last_run(file, quick)?;
    let entry = json!({
        "date": date(),
        "commit": commit(),
        "quick": quick,
        "ratios": ratios.iter().map(|r| json!({"case": r.case, "what": r.what, "value": r.value})).collect::<Vec<_>>(),
    });
    println!();
    match &previous {
        None => println!(
            "regression guard: no earlier {} run in {}; this one is the baseline",
            if quick { "--quick" } else { "full" },
            file.display()
        ),
        Some(previous) => {
            let label = format!(
                "{} ({})",
                previous["date"].as_str().unwrap_or("?"),
                previous["commit"].as_str().unwrap_or("?")
            );
            let mut moved = 0;
            for ratio in ratios {
                let Some(before) = previous["ratios"].as_array().and_then(|all| {
                    all.iter().find(|r| {
                        r["case"].as_str() == Some(ratio.case.as_str())
                            && r["what"].as_str() == Some(ratio.what)
                    })
                }) else {
                    continue;
                };
                let Some(before) = before["value"].as_f64() else {
                    continue;
                };
                let change = ratio.value / before - 1.0;
                if change.abs() > MOVED {
                    moved += 1;
                    println!(
                        "regression guard: {} {} moved {:+.0}% ({:.2}x -> {:.2}x) against the run of {label}",
                        ratio.case,
                        ratio.what,
                        change * 100.0,
                        before,
                        ratio.value
                    );
                }
            }
            if moved == 0 {
                println!(
                    "regression guard: no ratio moved by more than 10% against the run of {label}"
                );
            }
        }
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    writeln!(out, "{entry}")?;
    eprintln!("appended this run to {}", file.display());
    Ok(())
}

/// The last run of the same kind (quick or full) in the history file.
fn last_run(file: &Path, quick: bool) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
    };
    Ok(text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|run| run["quick"].as_bool() == Some(quick)))
}

fn date() -> String {
    command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "?".into())
}

fn commit() -> String {
    let mut commit =
        command_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    if command_line("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty())
    {
        commit.push_str("+changes");
    }
    commit
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
