//! Servers owned by a test: a real redis-server (or valkey-server) with the built module loaded,
//! on a free loopback port and in a temp directory of its own, stopped and removed on drop; its
//! restarts, replicas and AOF rewrites.
//!
//! Environment:
//! - `TXU_SERVER`: server binary (default `redis-server` on `PATH`).
//! - `TXU_MODULE`: module to load (default `release/libtxu.so` in the cargo target dir).
//! - `TXU_FAULT_MODULE`: the test-faults build (default `target/faults/release/libtxu.so`).
//! - `TXU_KEEP_DIRS`: when set, server directories are kept after the test.
//!
//! Every server gets its own temp directory and a free port, so tests can run in parallel
//! threads. The benchmark compiles this file too (with `#[path]`, next to `resp.rs`).
#![allow(dead_code)]

use super::resp::{count_requests, parse_info, RawConn};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to accept connections and finish loading.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long a graceful `SHUTDOWN` may take before it counts as a failure.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Read timeout of connections from [`Server::conn`].
pub const CONN_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times to pick another port when the chosen one got taken.
const PORT_ATTEMPTS: usize = 5;
/// Lines of the server log shown when a server dies or fails to start.
const LOG_TAIL_LINES: usize = 40;

/// The server binary under test: `$TXU_SERVER`, or `redis-server` on `PATH`.
pub fn server_binary() -> String {
    match std::env::var("TXU_SERVER") {
        Ok(s) if !s.is_empty() => s,
        _ => "redis-server".to_string(),
    }
}

/// The test-faults build of the module: `$TXU_FAULT_MODULE`, or
/// `target/faults/release/libtxu.so`. Panics when the file does not exist.
pub fn fault_module_path() -> PathBuf {
    let path = match std::env::var("TXU_FAULT_MODULE") {
        Ok(s) if !s.is_empty() => PathBuf::from(s),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/faults/release/libtxu.so"),
    };
    if !path.is_file() {
        panic!(
            "txu test-faults module not found at {}: run `make test`, or `cargo build --release \
             --features test-faults --target-dir target/faults`",
            path.display()
        );
    }
    path
}

/// The module under test: `$TXU_MODULE`, or `release/libtxu.so` in the cargo
/// target dir (`$CARGO_TARGET_DIR`, default `<crate>/target`).
/// Panics when the file does not exist.
pub fn module_path() -> PathBuf {
    let path = match std::env::var("TXU_MODULE") {
        Ok(s) if !s.is_empty() => PathBuf::from(s),
        _ => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(t)
                .join("release/libtxu.so"),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libtxu.so"),
        },
    };
    if !path.is_file() {
        panic!(
            "txu module not found at {}: run `cargo build --release` first \
             (or use `make test`), or point TXU_MODULE at the built .so",
            path.display()
        );
    }
    path.canonicalize().unwrap_or(path)
}

/// Poll `f` every ~10 ms until it returns true; panic with `what` after `deadline`.
pub fn wait_until<F: FnMut() -> bool>(what: &str, deadline: Duration, mut f: F) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Which server family a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Redis,
    Valkey,
}

/// Server family and version, from `INFO server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    pub flavor: Flavor,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServerVersion {
    /// True when this version is at least `major.minor` (flavor ignored).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// Groups `--name value...` arguments: each group starts at a `--` token.
fn group_args(args: &[String]) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for a in args {
        if a.starts_with("--") || groups.is_empty() {
            groups.push(vec![a.clone()]);
        } else if let Some(last) = groups.last_mut() {
            last.push(a.clone());
        }
    }
    groups
}

/// Merge config arguments: a group in `over` replaces every group of the same
/// directive in `base` (except `--loadmodule`, which adds a module).
fn merge_args(base: &[String], over: &[String]) -> Vec<String> {
    let over_groups = group_args(over);
    let replaced: Vec<String> = over_groups
        .iter()
        .map(|g| g[0].to_ascii_lowercase())
        .filter(|n| n != "--loadmodule")
        .collect();
    let mut out = Vec::new();
    for g in group_args(base) {
        if !replaced.contains(&g[0].to_ascii_lowercase()) {
            out.extend(g);
        }
    }
    for g in over_groups {
        out.extend(g);
    }
    out
}

fn to_strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local_addr of probe listener").port()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A fresh, empty directory under the system temp dir.
fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "txu-test-{}-{}-{:08x}",
            std::process::id(),
            n,
            nanos
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create server dir {}: {e}", dir.display()),
        }
    }
    panic!(
        "could not create a unique server dir under {}",
        std::env::temp_dir().display()
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A redis-server (or valkey-server) process owned by a test.
///
/// Dropping it kills the process (SIGKILL), waits for it and removes its
/// directory (unless `TXU_KEEP_DIRS` is set), also when the test panicked.
pub struct Server {
    child: Option<Child>,
    binary: String,
    port: u16,
    dir: PathBuf,
    /// Module to load, `None` for a server without the module.
    module: Option<PathBuf>,
    module_args: Vec<String>,
    /// Extra config arguments (override the defaults).
    args: Vec<String>,
}

impl Server {
    /// A fresh server with the module loaded and default config.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A fresh server with the module loaded; `args` add to or override the
    /// default config, e.g. `&["--appendonly", "yes"]`.
    pub fn start_with(args: &[&str]) -> Server {
        Server::start_with_module_args(args, &[])
    }

    /// Like [`Server::start_with`], passing `module_args` after the module path
    /// (e.g. `&["txu.max-queued", "5"]`).
    pub fn start_with_module_args(args: &[&str], module_args: &[&str]) -> Server {
        Server::launch_new(
            Some(module_path()),
            to_strings(module_args),
            to_strings(args),
        )
    }

    /// A fresh server with the test-faults build of the module (`TXU._FAULT`), built by
    /// `make test` into `target/faults` (override with `TXU_FAULT_MODULE`).
    pub fn start_with_fault_module(args: &[&str]) -> Server {
        Server::launch_new(Some(fault_module_path()), Vec::new(), to_strings(args))
    }

    /// A fresh server without the module (baseline comparisons).
    pub fn start_without_module() -> Server {
        Server::start_without_module_with(&[])
    }

    /// A fresh server without the module, with extra config arguments.
    pub fn start_without_module_with(args: &[&str]) -> Server {
        Server::launch_new(None, Vec::new(), to_strings(args))
    }

    fn launch_new(module: Option<PathBuf>, module_args: Vec<String>, args: Vec<String>) -> Server {
        let mut s = Server {
            child: None,
            binary: server_binary(),
            port: free_port(),
            dir: fresh_dir(),
            module,
            module_args,
            args,
        };
        s.launch(false);
        s
    }

    /// Full command line (without the binary) for the current settings.
    fn command_args(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut defaults: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--daemonize".into(),
            "no".into(),
            "--dir".into(),
            dir.clone(),
            "--logfile".into(),
            format!("{dir}/server.log"),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--enable-debug-command".into(),
            "yes".into(),
            // Replicas sync at once instead of after the default 5 s delay.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        if let Some(m) = &self.module {
            defaults.push("--loadmodule".into());
            defaults.push(m.to_string_lossy().into_owned());
            defaults.extend(self.module_args.iter().cloned());
        }
        merge_args(&defaults, &self.args)
    }

    /// Start the process on `self.port` and wait until it is ready. When the
    /// port turns out to be taken, retry with another free port (the first
    /// attempt keeps the current port, which `restart` relies on).
    fn launch(&mut self, keep_port: bool) {
        if keep_port && !port_is_free(self.port) {
            self.port = free_port();
        }
        for attempt in 1..=PORT_ATTEMPTS {
            self.spawn();
            match self.wait_ready() {
                Ok(()) => return,
                Err(msg) => {
                    let log = self.log();
                    let stderr = self.stderr_text();
                    let bind_race = self
                        .log_since_last_start()
                        .contains("Address already in use");
                    if bind_race && attempt < PORT_ATTEMPTS {
                        self.port = free_port();
                        continue;
                    }
                    panic!(
                        "{} on port {} failed to start: {msg}\n--- stderr ---\n{}\n--- last {} \
                         lines of {} ---\n{}",
                        self.binary,
                        self.port,
                        tail(&stderr, LOG_TAIL_LINES),
                        LOG_TAIL_LINES,
                        self.log_path().display(),
                        tail(&log, LOG_TAIL_LINES)
                    );
                }
            }
        }
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "spawn while a server process is running"
        );
        // Mark the log so errors can tell this start from earlier ones.
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
        {
            let _ = writeln!(f, "### txu harness: starting on port {}", self.port);
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.stdout"))
            .expect("open server.stdout");
        let err = out.try_clone().expect("clone server.stdout handle");
        let child = Command::new(&self.binary)
            .args(self.command_args())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run server binary `{}` (set TXU_SERVER, or run scripts/setup.sh): {e}",
                    self.binary
                )
            });
        self.child = Some(child);
    }

    /// Wait until PING answers PONG and loading is over, or the process exits.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        self.child = None;
                        return Err(format!("process exited early with {status}"));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("try_wait failed: {e}")),
                }
            }
            if self.ping_and_loaded() {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                self.kill_process();
                return Err(format!("not ready after {READY_DEADLINE:?}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when our own process (not another test's server that took the
    /// port) answers PING and has finished loading.
    fn ping_and_loaded(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
        let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
        if !matches!(pong.as_deref(), Ok("PONG")) {
            return false;
        }
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("server")
            .arg("persistence")
            .query(&mut con);
        let Ok(info) = info else {
            return false;
        };
        let info = parse_info(&info);
        let ours = self.pid().map(|p| p.to_string());
        info.get("process_id") == ours.as_ref()
            && info.get("loading").map(String::as_str) == Some("0")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(self.dir.join("server.stdout")).unwrap_or_default()
    }

    fn log_since_last_start(&self) -> String {
        let log = self.log();
        match log.rfind("### txu harness: starting") {
            Some(i) => log[i..].to_string(),
            None => log,
        }
    }

    /// SIGKILL the process (if running) and reap it.
    fn kill_process(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    // ----- public accessors -------------------------------------------------

    /// A new `redis` crate connection (RESP2), read timeout 30 s.
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("redis client URL");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to server on port {}: {e}", self.port));
        con.set_read_timeout(Some(CONN_READ_TIMEOUT))
            .expect("set read timeout");
        con
    }

    /// A `redis::Client` for this server (e.g. for pubsub or async use).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis client URL")
    }

    /// A raw RESP connection, see [`RawConn`].
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server binary this server runs.
    pub fn binary(&self) -> &str {
        &self.binary
    }

    /// Process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// True when the process is running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// The whole server log (all starts of this server).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `INFO <section>` parsed into `field -> value`.
    pub fn info(&self, section: &str) -> HashMap<String, String> {
        let mut con = self.conn();
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("INFO {section} failed: {e}"));
        parse_info(&text)
    }

    /// One `field:value` line of `INFO <section>`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        self.info(section).remove(field)
    }

    /// A numeric `field` of `INFO <section>`; panics when it is missing or not a number.
    pub fn info_u64(&self, section: &str, field: &str) -> u64 {
        let v = self
            .info_field(section, field)
            .unwrap_or_else(|| panic!("INFO {section} has no field {field}"));
        v.parse()
            .unwrap_or_else(|e| panic!("INFO {section} {field}={v:?} is not a number: {e}"))
    }

    /// `DEBUG DIGEST` of the whole dataset.
    pub fn digest(&self) -> String {
        let mut con = self.conn();
        redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut con)
            .unwrap_or_else(|e| panic!("DEBUG DIGEST failed on port {}: {e}", self.port))
    }

    /// Server family and version.
    pub fn version(&self) -> ServerVersion {
        let info = self.info("server");
        let (flavor, v) = match info.get("valkey_version") {
            Some(v) => (Flavor::Valkey, v.clone()),
            None => (
                Flavor::Redis,
                info.get("redis_version")
                    .cloned()
                    .expect("INFO server has redis_version"),
            ),
        };
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ServerVersion {
            flavor,
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
            patch: parts.next().unwrap_or(0),
        }
    }

    /// Send raw bytes on a fresh connection and return the raw bytes of one
    /// reply per command in `request` (RESP arrays or inline lines).
    pub fn raw_roundtrip(&self, request: &[u8]) -> Vec<u8> {
        self.raw_roundtrip_n(request, count_requests(request))
    }

    /// Send raw bytes on a fresh connection and return exactly `n` raw replies.
    pub fn raw_roundtrip_n(&self, request: &[u8], n: usize) -> Vec<u8> {
        let mut raw = self.raw();
        raw.send_raw(request);
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend(raw.read_reply());
        }
        out
    }

    // ----- stop / restart ---------------------------------------------------

    /// Graceful `SHUTDOWN` (saving/fsyncing as configured), then wait for exit.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let mut con = self.conn();
        let res: redis::RedisResult<redis::Value> = redis::cmd("SHUTDOWN").query(&mut con);
        match res {
            // The server closes the connection when it exits.
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {}
            other => panic!("SHUTDOWN on port {} was refused: {other:?}", self.port),
        }
        drop(con);
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child present");
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() < SHUTDOWN_DEADLINE => {
                    thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    self.kill_process();
                    panic!(
                        "server on port {} did not exit within {SHUTDOWN_DEADLINE:?} after \
                         SHUTDOWN\n{}",
                        self.port,
                        tail(&self.log(), LOG_TAIL_LINES)
                    );
                }
                Err(e) => panic!("waiting for server exit: {e}"),
            }
        }
        self.child = None;
    }

    /// SIGKILL the process and wait for it (no save, no fsync).
    pub fn kill9(&mut self) {
        self.kill_process();
    }

    /// Start a stopped server again: same dir, args, and port (a new port only
    /// when the old one cannot be bound). Returns once loading is done.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: server is still running");
        self.launch(true);
    }

    /// Graceful `SHUTDOWN`, then start again with the same dir/args/port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILL, then start again with the same dir/args/port.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Graceful restart with changed config: `extra_args` add to or override
    /// the current config arguments (and stay for later restarts).
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.stop();
        self.args = merge_args(&self.args, &to_strings(extra_args));
        self.start_again();
    }

    // ----- replication --------------------------------------------------------

    /// A new server (same binary, module and module args) replicating this one,
    /// returned once the link is up and the replica caught up.
    pub fn start_replica_of(&self) -> Server {
        self.start_replica_with(&[])
    }

    /// Like [`Server::start_replica_of`] with extra config for the replica.
    pub fn start_replica_with(&self, args: &[&str]) -> Server {
        let port = self.port.to_string();
        let mut replica_args = vec!["--replicaof".to_string(), "127.0.0.1".into(), port];
        replica_args.extend(to_strings(args));
        let replica =
            Server::launch_new(self.module.clone(), self.module_args.clone(), replica_args);
        wait_until(
            &format!(
                "replica on port {} link up with {}",
                replica.port, self.port
            ),
            READY_DEADLINE,
            || {
                replica
                    .info_field("replication", "master_link_status")
                    .as_deref()
                    == Some("up")
            },
        );
        wait_replica_synced(self, &replica);
        replica
    }
}

/// Poll until the replica's replication offset equals the primary's
/// `master_repl_offset` (deadline 10 s). Call after writes on the primary.
pub fn wait_replica_synced(primary: &Server, replica: &Server) {
    let offset = |s: &Server| -> Option<i64> {
        s.info_field("replication", "master_repl_offset")?
            .parse()
            .ok()
    };
    let start = Instant::now();
    loop {
        let p = offset(primary);
        let r = offset(replica);
        if p.is_some() && p == r {
            return;
        }
        if start.elapsed() > READY_DEADLINE {
            panic!(
                "replica on port {} not synced with primary on port {} after {READY_DEADLINE:?}: \
                 primary master_repl_offset {p:?}, replica {r:?}",
                replica.port, primary.port
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `BGREWRITEAOF`, then wait until no rewrite is running or scheduled, and check it succeeded
/// (and, where `INFO` counts rewrites, that one more happened).
pub fn rewrite_aof(s: &Server) {
    let before: u64 = s
        .info_field("persistence", "aof_rewrites")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut s.conn()).unwrap();
    assert!(r.contains("rewriting"), "BGREWRITEAOF: {r}");
    wait_until("the AOF rewrite to finish", Duration::from_secs(20), || {
        let p = s.info("persistence");
        p.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
            && p.get("aof_rewrite_scheduled").map(String::as_str) == Some("0")
    });
    let p = s.info("persistence");
    assert_eq!(
        p.get("aof_last_bgrewrite_status").map(String::as_str),
        Some("ok")
    );
    if let Some(after) = p.get("aof_rewrites").and_then(|v| v.parse::<u64>().ok()) {
        assert!(after > before, "no AOF rewrite happened");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_process();
        let keep = std::env::var_os("TXU_KEEP_DIRS").is_some();
        if thread::panicking() {
            eprintln!(
                "--- server on port {} (dir {}{}), last {} log lines ---\n{}",
                self.port,
                self.dir.display(),
                if keep { ", kept" } else { "" },
                LOG_TAIL_LINES,
                tail(&self.log(), LOG_TAIL_LINES)
            );
        }
        if !keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Read a whole file, or an empty vector when it does not exist.
pub fn read_file_bytes(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut v);
    }
    v
}
