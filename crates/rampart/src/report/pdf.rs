//! The PDF: the HTML report printed by headless Chromium, so both forms say the same thing.
//!
//! Chromium is found on `PATH` (`chromium`, `chromium-browser`, `google-chrome`); without it
//! a PDF is unavailable and the error says so. Chromium reads the page from a private temporary
//! directory; the page has no script and loads nothing, and every network request Chromium
//! might make on its own is sent to a dead loopback proxy, so printing never leaves the machine.

use std::path::PathBuf;
use std::time::Duration;

/// Longest a print may take.
const PRINT_TIMEOUT: Duration = Duration::from_secs(90);
/// The largest PDF accepted back.
const MAX_PDF_BYTES: u64 = 64 * 1024 * 1024;

/// One print at a time: Chromium is heavy, and reports are rare.
static PRINTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Why no PDF came out.
#[derive(Debug)]
pub enum PdfError {
    /// No Chromium on this machine.
    NoChromium,
    Failed(String),
}

impl std::fmt::Display for PdfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PdfError::NoChromium => f.write_str(
                "a PDF report needs Chromium (Debian: apt-get install chromium); \
                 the HTML and CSV forms need nothing",
            ),
            PdfError::Failed(why) => write!(f, "Chromium could not print the report: {why}"),
        }
    }
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Prints `html` to PDF bytes.
pub async fn print(html: &str) -> Result<Vec<u8>, PdfError> {
    let browser = chromium().ok_or(PdfError::NoChromium)?;
    let _turn = PRINTING
        .acquire()
        .await
        .map_err(|_| PdfError::Failed("closed".into()))?;
    let dir = tempfile::tempdir().map_err(|e| PdfError::Failed(e.to_string()))?;
    let page = dir.path().join("report.html");
    let out = dir.path().join("report.pdf");
    tokio::fs::write(&page, html)
        .await
        .map_err(|e| PdfError::Failed(e.to_string()))?;
    let mut command = tokio::process::Command::new(browser);
    command
        .arg("--headless")
        // The page is Rampart's own, without script; root (a container) cannot use the sandbox.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--no-default-browser-check")
        .arg("--disable-background-networking")
        .arg("--disable-component-update")
        .arg("--disable-sync")
        .arg("--disable-default-apps")
        .arg("--disable-extensions")
        .arg("--disable-domain-reliability")
        .arg("--no-pings")
        .arg("--proxy-server=http://127.0.0.1:9")
        .arg("--proxy-bypass-list=<-loopback>")
        .arg("--no-pdf-header-footer")
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| PdfError::Failed(format!("cannot start Chromium: {e}")))?;
    let output = tokio::time::timeout(PRINT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| PdfError::Failed(format!("no PDF within {PRINT_TIMEOUT:?}")))?
        .map_err(|e| PdfError::Failed(e.to_string()))?;
    let size = tokio::fs::metadata(&out).await.map(|m| m.len()).ok();
    match size {
        Some(size) if output.status.success() && size > 0 && size <= MAX_PDF_BYTES => {
            tokio::fs::read(&out)
                .await
                .map_err(|e| PdfError::Failed(e.to_string()))
        }
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(PdfError::Failed(format!(
                "{} ({})",
                output.status,
                last.chars().take(200).collect::<String>()
            )))
        }
    }
}
