//! Headless Chromium, started as CI starts it: Debian's `chromium`, no
//! sandbox (CI runs as root), nothing fetched, a fresh profile each time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/chromium.sh` installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a page may take; a hung browser fails the test.
const LIMIT: Duration = Duration::from_secs(120);

/// The browser, or an error saying how to install it (never a skip).
fn binary() -> Result<PathBuf, String> {
    let path = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_owned()));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Chromium is missing at {}: run `bash scripts/chromium.sh` (Debian's chromium package) first",
            path.display()
        ))
    }
}

/// Opens `page` and returns the DOM after its scripts ran.
pub fn dump_dom(page: &Path, scratch: &Path) -> Result<String, String> {
    let out = scratch.join("dom.html");
    run(&["--dump-dom".to_owned()], page, "", scratch, Some(&out))?;
    std::fs::read_to_string(&out).map_err(|e| format!("reading the DOM dump: {e}"))
}

/// Opens `page` at `#fragment` (none if empty) in a `width`×`height`
/// window and saves a PNG of it.
pub fn screenshot(
    page: &Path,
    fragment: &str,
    png: &Path,
    (width, height): (u32, u32),
    scratch: &Path,
) -> Result<(), String> {
    let _ = std::fs::remove_file(png);
    run(
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_owned(),
        ],
        page,
        fragment,
        scratch,
        None,
    )?;
    let bytes = std::fs::read(png).map_err(|e| format!("no screenshot at {}: {e}", png.display()))?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.len() < 24 {
        return Err(format!("{} is not a PNG", png.display()));
    }
    let dims = (
        u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
    );
    if dims != (width, height) {
        return Err(format!("screenshot is {dims:?}, asked for {:?}", (width, height)));
    }
    Ok(())
}

fn run(extra: &[String], page: &Path, fragment: &str, scratch: &Path, stdout: Option<&Path>) -> Result<(), String> {
    let profile = scratch.join(format!("profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
    let stdout = match stdout {
        Some(path) => Stdio::from(std::fs::File::create(path).map_err(|e| e.to_string())?),
        None => Stdio::null(),
    };
    let stderr_path = scratch.join("chromium.stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut url = format!("file://{}", page.canonicalize().map_err(|e| e.to_string())?.display());
    if !fragment.is_empty() {
        url = format!("{url}#{fragment}");
    }
    let mut child = Command::new(binary()?)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("starting Chromium: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("Chromium did not finish {url} within {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&profile);
    if !status.success() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("Chromium exited with {status} on {url}:\n{stderr}"));
    }
    Ok(())
}
