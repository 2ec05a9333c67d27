//! The anomaly detectors that read the audit log, run by `serve` beside the sinks: each time the
//! log's head moves, `Store::run_detectors` judges the new events (new source address,
//! off-hours login, first session to an asset, bulk transfer) and records their alerts. The
//! decisions are `rampart_core::detectors`; what the store remembers and how far it read are
//! the store's, so a restart goes on where it stopped. The failed-login burst is counted by the
//! authenticator's store call instead (see `AuthSettings::failure_burst`).

use rampart_core::detectors::DetectorSettings;
use rampart_core::time_arg::format_duration;
use rampart_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the log's head is looked at: alerts come within about a second.
const POLL: Duration = Duration::from_millis(500);
/// Events judged per write transaction.
const BATCH: u32 = 500;

pub async fn run(store: Arc<Store>, settings: DetectorSettings, mut stop: watch::Receiver<bool>) {
    tracing::info!("anomaly detectors reading the audit log");
    let mut judged_head = None;
    loop {
        match store.facts_version().await {
            Ok(head) if head != judged_head => {
                // Judged up to at least this head once the loop below ends; the alerts it
                // writes move the head again, which costs one more short pass.
                let mut done = true;
                loop {
                    match store.run_detectors(&settings, BATCH).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(err) => {
                            tracing::error!(error = %err, "the anomaly detectors cannot read the audit log");
                            done = false;
                            break;
                        }
                    }
                }
                if done {
                    judged_head = head;
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "the anomaly detectors cannot read the audit log")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The detectors' settings as the `server_started` event records them (by their keys in
/// `[alerts]`; `off` for a detector that is off).
pub fn describe(settings: &DetectorSettings) -> serde_json::Value {
    let off = || serde_json::Value::from("off");
    serde_json::json!({
        "new_source_days": settings
            .new_source_after
            .map_or_else(off, |after| (after.as_secs() / 86_400).into()),
        "business_hours": settings
            .business_hours
            .as_ref()
            .map_or_else(off, |hours| hours.to_string().into()),
        "failed_logins": settings
            .failed_logins
            .map_or_else(off, |burst| burst.count.into()),
        "failed_logins_window": settings
            .failed_logins
            .map_or_else(off, |burst| format_duration(burst.window).into()),
        "bulk_transfer": settings
            .bulk_transfer_bytes
            .map_or_else(off, serde_json::Value::from),
        "new_asset": settings.new_asset,
    })
}
