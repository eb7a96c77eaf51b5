//! Debian's Chromium, headless, driven over WebDriver (chromedriver): for the
//! journeys a real browser must show work, and the README's screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness;

/// A chromedriver process and the browser profile it uses; both go when dropped.
/// One at a time: two browsers beside the rest of the suite on two cores make
/// each too slow to start.
pub struct Chromium {
    driver: Child,
    profile: tempfile::TempDir,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Chromium {
    /// Starts chromedriver, after saying how to install what is missing.
    pub fn start() -> Chromium {
        let chromedriver = Path::new("/usr/bin/chromedriver");
        for (path, package) in [
            (chromedriver, "chromium-driver"),
            (Path::new("/usr/bin/chromium"), "chromium"),
        ] {
            assert!(
                path.exists(),
                "the browser test needs {} (Debian's {package}), which is not installed. scripts/test installs it \
                 when run as root; or run `sudo apt-get install -y chromium chromium-driver`",
                path.display()
            );
        }
        let one_at_a_time = ONE_BROWSER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let driver = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Chromium {
            driver,
            profile: tempfile::tempdir().unwrap(),
            _one_at_a_time: one_at_a_time,
        }
    }

    /// A WebDriver session in a new headless window.
    pub async fn connect(&self) -> fantoccini::Client {
        // chromedriver takes the port the system gives it and does not say which.
        // Generous: a busy machine starts it slowly; this waits, it measures nothing.
        let driver_port = harness::listening_port_of(self.driver.id(), Duration::from_secs(60));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=820,1100", "--lang=en-GB",
                         format!("--user-data-dir={}", self.profile.path().display())],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Writes screenshots under the test's target folder, and where
/// `PORTVAKT_SCREENSHOTS` says (`docs/screenshots` refreshes the README's).
pub struct Screenshots {
    dirs: Vec<PathBuf>,
}

impl Screenshots {
    pub fn new() -> Screenshots {
        let own = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&own).unwrap();
        let extra = std::env::var_os("PORTVAKT_SCREENSHOTS").map(PathBuf::from);
        Screenshots {
            dirs: std::iter::once(own).chain(extra).collect(),
        }
    }

    pub fn save(&self, name: &str, png: &[u8]) {
        for dir in &self.dirs {
            std::fs::write(dir.join(name), png).unwrap();
        }
    }
}

/// A runtime for one browser journey.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
