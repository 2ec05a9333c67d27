//! `rampart report`: a compliance report for a period, written to a file or standard output.

use crate::cli::ReportArgs;
use crate::config::Config;
use anyhow::{Context, bail};
use rampart_core::audit::Actor;
use rampart_store::Store;
use rampart_web::reports::{ReportFormat, ReportRequest, period};
use std::io::{IsTerminal, Write};

pub async fn run(
    config: &Config,
    store: &Store,
    actor: &Actor,
    args: &ReportArgs,
) -> anyhow::Result<()> {
    let format = ReportFormat::parse(&args.format)
        .with_context(|| format!("unknown format {:?}: html, csv, pdf or json", args.format))?;
    if format == ReportFormat::Pdf && args.out.is_none() && std::io::stdout().is_terminal() {
        bail!("a PDF is not for the terminal: give --out FILE (or redirect standard output)");
    }
    let (from, to) = period(
        args.from.as_deref(),
        args.to.as_deref(),
        time::OffsetDateTime::now_utc(),
    )
    .map_err(anyhow::Error::msg)?;
    if format == ReportFormat::Pdf {
        eprintln!("printing the report with Chromium...");
    }
    let request = ReportRequest {
        from,
        to,
        format,
        actor: actor.clone(),
        via: "cli".to_owned(),
    };
    let bytes = crate::report::make(store, config.audit.seal_interval, &request)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote the {} report for [{}, {}) to {} ({} bytes)",
                format.as_str(),
                rampart_core::time_arg::format_rfc3339(from),
                rampart_core::time_arg::format_rfc3339(to),
                path.display(),
                bytes.len()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(())
}
