//! What the operator's tests run against: a real redis-server with the txu module, the
//! operator binary, and (in `webdriver.rs`) headless Chromium. Every process is owned by a
//! guard that stops it when dropped, also when a test panics; every wait polls with a deadline.
//!
//! Environment: `TXU_MODULE` (default `<workspace target>/release/libtxu.so`), `TXU_SERVER`
//! (default `redis-server`), and `TXU_KEEP_DIRS` to keep the test's directory (logs).
#![allow(dead_code)]

pub mod http;
pub mod webdriver;

use redis::Value;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any one condition may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The workspace root (the operator crate's parent).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate lives in the workspace")
        .to_path_buf()
}

/// The workspace's cargo target directory (`$CARGO_TARGET_DIR`, or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => workspace().join(t),
        _ => workspace().join("target"),
    }
}

/// A free loopback port (the OS picks it; the listener is closed again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `name` found in a directory of `PATH` (or `name` itself when it has a slash).
pub fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Polls `f` until it is true, for at most [`DEADLINE`].
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A directory of the test's own, removed when dropped (kept with `TXU_KEEP_DIRS`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("txu-operator-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("TXU_KEEP_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            eprintln!("kept {}", self.0.display());
        }
    }
}

/// A child process, killed and reaped when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\n---- {} ({}) ----\n{tail}", self.name, self.log.display())
    }

    /// Fails the test when the process has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited: {status}{}", self.name, self.log_tail());
        }
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The txu module under test.
pub fn module_path() -> PathBuf {
    let path = match std::env::var("TXU_MODULE") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => target_dir().join("release/libtxu.so"),
    };
    assert!(
        path.is_file(),
        "txu module not found at {}: run `cargo build --release` at the workspace root (or \
         `make test-operator`), or point TXU_MODULE at the built .so",
        path.display()
    );
    path
}

/// A redis-server with the module on a free loopback port, persistence off.
pub struct RedisServer {
    pub port: u16,
    proc: Proc,
}

impl RedisServer {
    pub fn start(dir: &Path) -> RedisServer {
        let bin = std::env::var("TXU_SERVER")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "redis-server".to_string());
        let module = module_path();
        // A port picked free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let log = dir.join(format!("redis-{port}.log"));
            let mut cmd = Command::new(&bin);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .arg("--logfile")
                .arg(&log)
                .arg("--loadmodule")
                .arg(&module)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut s = RedisServer {
                port,
                proc: Proc::spawn("redis-server", cmd, log),
            };
            let start = Instant::now();
            loop {
                if let Ok(mut con) = s.try_conn() {
                    if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                        return s;
                    }
                }
                if let Ok(Some(_)) = s.proc.child.try_wait() {
                    if s.proc.log_tail().contains("Address already in use") {
                        break;
                    }
                    s.proc.check_alive();
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "redis-server did not answer on port {port}{}",
                    s.proc.log_tail()
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server found no free port");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .unwrap_or_else(|e| panic!("connect to redis-server: {e}{}", self.proc.log_tail()))
    }
}

/// The operator binary on a free port (`PORT=0`), with the line it prints once listening.
pub struct Operator {
    pub addr: SocketAddr,
    pub banner: String,
    _proc: Proc,
}

impl Operator {
    pub fn start(dir: &Path, redis_url: &str) -> Operator {
        let log = dir.join("operator.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_txu-operator"));
        cmd.env("PORT", "0")
            .env("REDIS_URL", redis_url)
            .env_remove("BIND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("create the operator log"));
        let mut proc = Proc::spawn("txu-operator", cmd, log);
        let out = proc.stdout().expect("the operator's stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let banner = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("the operator printed nothing{}", proc.log_tail()));
        let addr = banner
            .strip_prefix("txu operator on http://")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {banner:?}"));
        // It prints the line once listening: the page answers right away.
        let r = http::get(addr, "/").unwrap_or_else(|e| panic!("GET / : {e}{}", proc.log_tail()));
        assert_eq!(r.status, 200, "GET /: {}", r.text());
        Operator {
            addr,
            banner,
            _proc: proc,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

// ----- txu through the redis crate -------------------------------------------------------------

pub fn query(con: &mut redis::Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".to_string(),
        Value::Int(i) => i.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

/// A field of a task or status reply, by name (RESP3 map or RESP2 field/value array).
pub fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Map(m) => m.iter().find(|(k, _)| text(k) == name).map(|(_, v)| v),
        Value::Array(f) => f
            .chunks(2)
            .find(|kv| kv.len() == 2 && text(&kv[0]) == name)
            .map(|kv| &kv[1]),
        _ => None,
    }
}

/// `TXU.RUN RETRY <retry> <argc> <cmd> ... ` that must be deferred: its task id.
pub fn defer(con: &mut redis::Connection, retry: u32, cmds: &[&[&str]]) -> String {
    let mut cmd = redis::cmd("TXU.RUN");
    cmd.arg("RETRY").arg(retry);
    for c in cmds {
        cmd.arg(c.len()).arg(*c);
    }
    match cmd.query::<Value>(con) {
        Err(e) if e.code() == Some("DEFERRED") => e
            .detail()
            .and_then(|d| d.split(' ').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("DEFERRED without an id: {e}")),
        other => panic!("TXU.RUN of {cmds:?} was not deferred: {other:?}"),
    }
}

/// `TXU.STATUS <id>`'s state.
pub fn state(con: &mut redis::Connection, id: &str) -> String {
    let v = query(con, &["TXU.STATUS", id]);
    field(&v, "state")
        .map(text)
        .unwrap_or_else(|| panic!("TXU.STATUS {id}: {v:?}"))
}

/// Every id `TXU.TASKS <which>` lists, following the cursor.
pub fn task_ids(con: &mut redis::Connection, which: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let v = query(
            con,
            &["TXU.TASKS", which, "CURSOR", &cursor, "COUNT", "1000"],
        );
        let Value::Array(parts) = &v else {
            panic!("TXU.TASKS {which}: {v:?}");
        };
        let [next, Value::Array(tasks)] = parts.as_slice() else {
            panic!("TXU.TASKS {which}: {v:?}");
        };
        for t in tasks {
            ids.push(field(t, "id").map(text).expect("a task has an id"));
        }
        cursor = text(next);
        if cursor == "0" {
            return ids;
        }
    }
}

/// A field of `INFO txu`.
pub fn txu_info(con: &mut redis::Connection, name: &str) -> i64 {
    let info = text(&query(con, &["INFO", "txu"]));
    info.lines()
        .find_map(|l| l.trim_end().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO txu has no {name}: {info}"))
}

pub fn config_set(con: &mut redis::Connection, name: &str, value: &str) {
    let _ = query(con, &["CONFIG", "SET", name, value]);
}
