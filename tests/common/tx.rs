//! Talking to txu on a [`RawConn`]: a command with text arguments and its raw reply, the reply
//! shapes the suites check, and whole transactions (`TXU.BEGIN`, `TXU.QUEUE` each command,
//! `TXU.EXEC`). Every helper panics with the reply when it is not what it expects.

use super::resp::{esc, push_bulk, show, RawConn};
use super::server::Server;

/// The reply of a successful `TXU.QUEUE`.
pub const QUEUED: &str = "+QUEUED\r\n";
/// The reply of `TXU.EXEC` after a validation error.
pub const EXECABORT: &str = "-EXECABORT Transaction discarded because of previous errors.\r\n";

// ----- one command ---------------------------------------------------------------------------

/// Sends `args` as one command and returns the raw reply.
pub fn run(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd(&v)
}

/// Sends `args` as one command and returns the raw reply as text.
pub fn run_text(c: &mut RawConn, args: &[&str]) -> String {
    show(&run(c, args))
}

/// Sends a whitespace-separated command line and returns the raw reply as text.
pub fn run_line(c: &mut RawConn, line: &str) -> String {
    run_text(c, &line.split_whitespace().collect::<Vec<_>>())
}

/// Sends `args` and asserts the raw reply is exactly `want`.
#[track_caller]
pub fn expect(c: &mut RawConn, args: &[&str], want: &str) {
    assert_eq!(run_text(c, args), want, "reply to {args:?}");
}

/// Sends `args`, asserts the reply is an error and returns its text.
#[track_caller]
pub fn run_err(c: &mut RawConn, args: &[&str]) -> String {
    error_text(run(c, args), &format!("{args:?}"))
}

/// `-<text>\r\n` for an error text.
pub fn err(text: &str) -> String {
    format!("-{text}\r\n")
}

/// A RESP bulk string, as text.
pub fn bulk(s: &str) -> String {
    show(&bulk_bytes(s.as_bytes()))
}

/// A RESP bulk string of any bytes.
pub fn bulk_bytes(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_bulk(&mut out, v);
    out
}

/// The text of an error reply of one line (without `-` and CRLF, no CR or LF inside);
/// panics for any other reply, naming `what` it replied to.
#[track_caller]
pub fn error_text(reply: impl AsRef<[u8]>, what: &str) -> String {
    let r = reply.as_ref();
    let body = r
        .strip_prefix(b"-")
        .and_then(|b| b.strip_suffix(b"\r\n"))
        .filter(|b| !b.contains(&b'\r') && !b.contains(&b'\n'));
    match body {
        Some(b) => show(b),
        None => panic!(
            "{what}: expected an error reply of one line, got {}",
            esc(r)
        ),
    }
}

/// `EXISTS key` on a fresh connection (database 0).
#[track_caller]
pub fn exists(s: &Server, key: &str) -> bool {
    match run_text(&mut s.raw(), &["EXISTS", key]).as_str() {
        ":0\r\n" => false,
        ":1\r\n" => true,
        other => panic!("EXISTS {key}: {other:?}"),
    }
}

// ----- transactions --------------------------------------------------------------------------

/// The id inside a bulk reply `$<n>\r\n<digits>-<digits>\r\n`, if it is one.
pub fn parse_id(reply: &str) -> Option<&str> {
    let rest = reply.strip_prefix('$')?;
    let (len, rest) = rest.split_once("\r\n")?;
    let id = rest.strip_suffix("\r\n")?;
    if len.parse::<usize>().ok()? != id.len() {
        return None;
    }
    let (ms, seq) = id.split_once('-')?;
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
    };
    (number(ms) && number(seq)).then_some(id)
}

/// `TXU.BEGIN`, asserting the reply is a bulk `<ms>-<seq>`; returns the id.
#[track_caller]
pub fn begin(c: &mut RawConn) -> String {
    begin_with(c, &[])
}

/// `TXU.BEGIN <opts>` (e.g. `RETRY`, `RETAIN <ms>`), asserting the reply is a bulk
/// `<ms>-<seq>`; returns the id.
#[track_caller]
pub fn begin_with(c: &mut RawConn, opts: &[&str]) -> String {
    let mut args = vec!["TXU.BEGIN"];
    args.extend_from_slice(opts);
    let r = run_text(c, &args);
    match parse_id(&r) {
        Some(id) => id.to_string(),
        None => panic!("{args:?} did not reply a bulk <ms>-<seq> id: {r:?}"),
    }
}

/// `TXU.QUEUE <args>`, returning the raw reply.
pub fn queue_reply(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    let mut full = vec!["TXU.QUEUE"];
    full.extend_from_slice(args);
    run(c, &full)
}

/// `TXU.QUEUE <args>`, asserting `QUEUED`.
#[track_caller]
pub fn queue(c: &mut RawConn, args: &[&str]) {
    let r = queue_reply(c, args);
    assert!(r == QUEUED.as_bytes(), "TXU.QUEUE {args:?}: {}", esc(&r));
}

/// `TXU.QUEUE <args>` with arguments of any bytes, asserting `QUEUED`.
#[track_caller]
pub fn queue_bytes(c: &mut RawConn, args: &[&[u8]]) {
    let mut full: Vec<&[u8]> = vec![b"TXU.QUEUE"];
    full.extend_from_slice(args);
    let r = c.cmd(&full);
    assert!(
        r == QUEUED.as_bytes(),
        "TXU.QUEUE {}: {}",
        esc(&args.join(&b' ')),
        esc(&r)
    );
}

/// `TXU.BEGIN <opts>`, `TXU.QUEUE` each command (each must be `QUEUED`), `TXU.EXEC`.
/// Returns the transaction id and the raw `TXU.EXEC` reply.
#[track_caller]
pub fn exec_tx<C, A>(c: &mut RawConn, opts: &[&str], cmds: &[C]) -> (String, Vec<u8>)
where
    C: AsRef<[A]>,
    A: AsRef<[u8]>,
{
    let id = begin_with(c, opts);
    for cmd in cmds {
        let args: Vec<&[u8]> = cmd.as_ref().iter().map(AsRef::as_ref).collect();
        queue_bytes(c, &args);
    }
    (id, run(c, &["TXU.EXEC"]))
}

/// `TXU.BEGIN <opts>` and a transaction of whitespace-separated command lines (see
/// [`exec_tx`]); returns the transaction id and the raw `TXU.EXEC` reply.
#[track_caller]
pub fn txu_with(c: &mut RawConn, opts: &[&str], lines: &[impl AsRef<str>]) -> (String, Vec<u8>) {
    let cmds: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.as_ref().split_whitespace().collect())
        .collect();
    exec_tx(c, opts, &cmds)
}

/// `TXU.RUN <opts> <argc> <command...> ...` of `cmds`; returns the raw reply.
pub fn run_frames<C, A>(c: &mut RawConn, opts: &[&str], cmds: &[C]) -> Vec<u8>
where
    C: AsRef<[A]>,
    A: AsRef<[u8]>,
{
    let counts: Vec<String> = cmds
        .iter()
        .map(|cmd| cmd.as_ref().len().to_string())
        .collect();
    let mut args: Vec<&[u8]> = vec![b"TXU.RUN"];
    args.extend(opts.iter().map(|o| o.as_bytes()));
    for (cmd, n) in cmds.iter().zip(&counts) {
        args.push(n.as_bytes());
        args.extend(cmd.as_ref().iter().map(AsRef::as_ref));
    }
    c.cmd(&args)
}

/// `TXU.RUN` of whitespace-separated command lines; returns the raw reply.
pub fn txu_run(c: &mut RawConn, lines: &[impl AsRef<str>]) -> Vec<u8> {
    let cmds: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.as_ref().split_whitespace().collect())
        .collect();
    run_frames(c, &[], &cmds)
}

/// A transaction of whitespace-separated command lines; returns the raw `TXU.EXEC` reply.
#[track_caller]
pub fn txu(c: &mut RawConn, lines: &[impl AsRef<str>]) -> Vec<u8> {
    txu_with(c, &[], lines).1
}

/// Asserts that `reply` is one error line starting `ROLLBACK command <k> (<name>) failed: `
/// (`k` 1-based); returns the command's own error, the text after that.
#[track_caller]
pub fn assert_rolled_back(reply: impl AsRef<[u8]>, k: usize, name: &str) -> String {
    let text = error_text(&reply, "TXU.EXEC");
    let head = format!("ROLLBACK command {k} ({name}) failed: ");
    match text.strip_prefix(&head) {
        Some(cause) => cause.to_string(),
        None => panic!("TXU.EXEC should fail with {head:?}..., got {text:?}"),
    }
}

/// The ids `TXU.TASKS <args>` lists on this connection, in order, and the whole raw reply.
pub fn task_ids(c: &mut RawConn, args: &[&str]) -> (Vec<String>, String) {
    let mut full = vec!["TXU.TASKS"];
    full.extend_from_slice(args);
    let whole = String::from_utf8_lossy(&run(c, &full)).into_owned();
    let mut ids = Vec::new();
    let mut lines = whole.split("\r\n");
    while let Some(l) = lines.next() {
        if l == "id" {
            lines.next();
            if let Some(id) = lines.next() {
                ids.push(id.to_string());
            }
        }
    }
    (ids, whole)
}
