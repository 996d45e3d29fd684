//! Headless Chromium through chromedriver's W3C WebDriver endpoint: the few commands the
//! browser test needs (navigate, find, click, type, read, run a script, dialogs, screenshot),
//! over the small HTTP client in `http.rs`.
//!
//! Environment: `CHROMEDRIVER` (default `chromedriver` on `PATH`), `CHROMIUM` (default
//! `chromium` on `PATH`). Both are Debian's packages `chromium` and `chromium-driver`; when one is
//! missing the test fails and says how to install them.

use super::http;
use super::{free_port, on_path, Proc, DEADLINE};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const INSTALL: &str =
    "install Debian's packages with `apt-get install -y chromium chromium-driver` (or `make setup`)";

fn program(env: &str, name: &str) -> PathBuf {
    match std::env::var(env) {
        Ok(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "{env}={} does not exist; {INSTALL}",
                p.display()
            );
            p
        }
        _ => on_path(name).unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: the browser test needs it; {INSTALL}, or set {env}")
        }),
    }
}

/// A browser session; ends the session and stops chromedriver when dropped.
pub struct Browser {
    addr: SocketAddr,
    session: String,
    _driver: Proc,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub fn start(dir: &Path) -> Browser {
        let driver_bin = program("CHROMEDRIVER", "chromedriver");
        let chromium = program("CHROMIUM", "chromium");
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let mut cmd = Command::new(&driver_bin);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut driver = Proc::spawn("chromedriver", cmd, log);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        loop {
            if let Ok(r) = http::get(addr, "/status") {
                if r.json()["value"]["ready"] == json!(true) {
                    break;
                }
            }
            driver.check_alive();
            assert!(
                start.elapsed() < DEADLINE,
                "chromedriver did not get ready on port {port}{}",
                driver.log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        }}});
        let r = call(addr, "POST", "/session", Some(caps));
        let session = match r {
            Ok(v) => v["sessionId"].as_str().map(str::to_string),
            Err(e) => panic!("no Chromium session: {e}{}", driver.log_tail()),
        };
        let session = session.unwrap_or_else(|| panic!("no sessionId{}", driver.log_tail()));
        Browser {
            addr,
            session,
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        call(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element `css` selects, or an error (none yet, say).
    pub fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        // The W3C element reference is an object with one member (its key is a fixed UUID).
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("element reference {v}"))
    }

    pub fn click(&self, css: &str) -> Result<(), String> {
        let e = self.find(css)?;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .map(drop)
    }

    /// Types `keys` into the element (`\u{E007}` is Enter).
    pub fn type_into(&self, css: &str, keys: &str) -> Result<(), String> {
        let e = self.find(css)?;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": keys })),
        )
        .map(drop)
    }

    pub fn clear(&self, css: &str) -> Result<(), String> {
        let e = self.find(css)?;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .map(drop)
    }

    /// The rendered text of the element `css` selects.
    pub fn text(&self, css: &str) -> Result<String, String> {
        let e = self.find(css)?;
        let v = self.cmd("GET", &format!("/element/{e}/text"), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn exec(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The page's visible text, for failure messages.
    pub fn page_text(&self) -> String {
        match self.exec("return document.body.innerText") {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(no page text: {e})"),
        }
    }

    /// The text of the open `alert`/`confirm` dialog, or an error when none is open.
    pub fn dialog_text(&self) -> Result<String, String> {
        let v = self.cmd("GET", "/alert/text", None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Waits for a dialog, checks its text contains `want`, then accepts or dismisses it.
    pub fn answer_dialog(&self, want: &str, accept: bool) {
        let text = self.wait_for(&format!("a confirm dialog about {want:?}"), |b| {
            Ok(b.dialog_text().ok())
        });
        assert!(
            text.contains(want),
            "the dialog says {text:?}, not {want:?}"
        );
        let verb = if accept { "accept" } else { "dismiss" };
        self.cmd("POST", &format!("/alert/{verb}"), Some(json!({})))
            .unwrap_or_else(|e| panic!("{verb} the dialog: {e}"));
    }

    /// Polls `f` until it gives `Some`, for at most [`DEADLINE`]; then fails with what it
    /// waited for, the last error and the page's text.
    pub fn wait_for<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&Browser) -> Result<Option<T>, String>,
    ) -> T {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            match f(self) {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) => last = e,
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out after {DEADLINE:?} waiting for {what} (last error: {last})\n\
                     ---- page text ----\n{}\n-------------------",
                    self.page_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let v = self
            .cmd("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64_decode(v.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver itself is stopped by its Proc guard.
        let _ = self.cmd("DELETE", "", None);
    }
}

/// One WebDriver command: its `value`, or the error chromedriver reported.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let r = match &body {
        Some(b) => http::post_json(addr, path, b),
        None => http::request(addr, method, path, None),
    }
    .map_err(|e| format!("{method} {path}: {e}"))?;
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("{method} {path}: not JSON ({e}): {}", r.text()))?;
    if r.status != 200 {
        let err = &v["value"];
        return Err(format!(
            "{method} {path}: {} {}: {}",
            r.status,
            err["error"].as_str().unwrap_or("?"),
            err["message"].as_str().unwrap_or_default()
        ));
    }
    Ok(v["value"].clone())
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
