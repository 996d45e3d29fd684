//! The benchmark's side of the RESP client: what a reply must look like ([`Expect`]), and the
//! few commands the workloads send on a [`RawConn`] besides their measured requests
//! ([`Commands`]). Encoding, parsing and the connection itself are `tests/common/resp.rs`.

use crate::resp::{
    array_header, array_items, bulk_body, esc, flat_array, parse_info, reply_end, show, RawConn,
};
use std::collections::HashMap;
use std::time::Duration;

/// No reply within this time fails the run.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the server on 127.0.0.1:`port`.
pub fn connect(port: u16) -> Result<RawConn, String> {
    RawConn::open(port, READ_TIMEOUT)
}

/// What one reply must look like.
#[derive(Clone, Debug)]
pub enum Expect {
    Exact(Vec<u8>),
    /// A non-null bulk string (the id from TXU.BEGIN).
    Bulk,
    Int,
    ErrorPrefix(Vec<u8>),
    /// An array of this many elements, none of them an error.
    ArrayNoErrors(usize),
}

impl Expect {
    pub fn ok() -> Expect {
        Expect::Exact(b"+OK\r\n".to_vec())
    }

    pub fn queued() -> Expect {
        Expect::Exact(b"+QUEUED\r\n".to_vec())
    }

    pub fn matches(&self, r: &[u8]) -> bool {
        match self {
            Expect::Exact(e) => r == e.as_slice(),
            Expect::Bulk => r.starts_with(b"$") && !r.starts_with(b"$-"),
            Expect::Int => r.starts_with(b":"),
            Expect::ErrorPrefix(p) => r.starts_with(p),
            Expect::ArrayNoErrors(n) => array_without_errors(r, *n),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Expect::Exact(e) => format!("{:?}", esc(e)),
            Expect::Bulk => "a bulk string".into(),
            Expect::Int => "an integer".into(),
            Expect::ErrorPrefix(p) => format!("an error starting {:?}", show(p)),
            Expect::ArrayNoErrors(n) => format!("an array of {n} replies without errors"),
        }
    }
}

/// `r` is exactly an array of `n` replies, none of them an error (checked on every reply of a
/// throughput run, so without allocating).
pub fn array_without_errors(r: &[u8], n: usize) -> bool {
    let Some((count, mut cur)) = array_header(r) else {
        return false;
    };
    if count != n {
        return false;
    }
    for _ in 0..n {
        if r.get(cur) == Some(&b'-') {
            return false;
        }
        match reply_end(r, cur) {
            Ok(Some(e)) => cur = e,
            _ => return false,
        }
    }
    cur == r.len()
}

/// The replies of a transaction: `first` (MULTI's OK or TXU.BEGIN's id), `n` times QUEUED,
/// then `exec`.
pub fn tx_expect(first: Expect, n: usize, exec: Expect) -> Vec<Expect> {
    let mut v = vec![first];
    v.extend(std::iter::repeat_n(Expect::queued(), n));
    v.push(exec);
    v
}

/// `*n` followed by `n` times `+OK`.
pub fn array_of_ok(n: usize) -> Expect {
    let mut e = format!("*{n}\r\n").into_bytes();
    for _ in 0..n {
        e.extend_from_slice(b"+OK\r\n");
    }
    Expect::Exact(e)
}

pub fn check_reply(expect: &Expect, reply: &[u8], what: &str) -> Result<(), String> {
    if expect.matches(reply) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {}, got {:?}",
            expect.describe(),
            esc(reply)
        ))
    }
}

/// What the workloads ask a server besides their measured requests.
pub trait Commands {
    /// Reads `n` replies; reply `i` must match `expect[min(i, expect.len() - 1)]`.
    fn expect_replies(&mut self, expect: &[Expect], n: usize) -> Result<(), String>;
    /// Sends `request` (`n` commands) and checks their replies as
    /// [`Commands::expect_replies`].
    fn pipeline(&mut self, request: &[u8], expect: &[Expect], n: usize) -> Result<(), String>;
    /// `INFO <section>` parsed into `field -> value`.
    fn info(&mut self, section: &str) -> Result<HashMap<String, String>, String>;
    fn config_set(&mut self, name: &str, value: &str) -> Result<(), String>;
    fn config_get(&mut self, name: &str) -> Result<String, String>;
    /// The server's clock (`TIME`), in Unix milliseconds.
    fn server_time_ms(&mut self) -> Result<i64, String>;
    /// Every key matching `pattern` (`SCAN`).
    fn scan_match(&mut self, pattern: &[u8]) -> Result<Vec<Vec<u8>>, String>;
}

impl Commands for RawConn {
    fn expect_replies(&mut self, expect: &[Expect], n: usize) -> Result<(), String> {
        for i in 0..n {
            let r = self.next_reply()?;
            let e = &expect[i.min(expect.len() - 1)];
            check_reply(e, self.reply(r), &format!("reply {}", i + 1))?;
        }
        Ok(())
    }

    fn pipeline(&mut self, request: &[u8], expect: &[Expect], n: usize) -> Result<(), String> {
        self.write(request)?;
        self.expect_replies(expect, n)
    }

    fn info(&mut self, section: &str) -> Result<HashMap<String, String>, String> {
        let r = self.call(&[b"INFO", section.as_bytes()])?;
        let body = bulk_body(&r).ok_or_else(|| format!("INFO {section}: {:?}", esc(&r)))?;
        Ok(parse_info(&show(body)))
    }

    fn config_set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let r = self.call(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()])?;
        check_reply(&Expect::ok(), &r, &format!("CONFIG SET {name} {value}"))
    }

    fn config_get(&mut self, name: &str) -> Result<String, String> {
        let r = self.call(&[b"CONFIG", b"GET", name.as_bytes()])?;
        match flat_array(&r).as_deref() {
            Some([_, value]) => Ok(value.clone()),
            _ => Err(format!("CONFIG GET {name}: {:?}", esc(&r))),
        }
    }

    fn server_time_ms(&mut self) -> Result<i64, String> {
        let r = self.call(&[b"TIME"])?;
        match flat_array(&r).as_deref() {
            Some([s, us]) => match (s.parse::<i64>(), us.parse::<i64>()) {
                (Ok(s), Ok(us)) => Ok(s * 1000 + us / 1000),
                _ => Err(format!("TIME: {:?}", esc(&r))),
            },
            _ => Err(format!("TIME: {:?}", esc(&r))),
        }
    }

    fn scan_match(&mut self, pattern: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let r = self.call(&[b"SCAN", &cursor, b"MATCH", pattern, b"COUNT", b"1000"])?;
            // *2 [cursor, [keys...]]
            let bad = || format!("SCAN: {:?}", esc(&r));
            let (next, names) = match array_items(&r).as_deref() {
                Some([next, names]) => (
                    bulk_body(next).ok_or_else(bad)?.to_vec(),
                    flat_array(names).ok_or_else(bad)?,
                ),
                _ => return Err(bad()),
            };
            cursor = next;
            keys.extend(names.into_iter().map(String::into_bytes));
            if cursor == b"0" {
                return Ok(keys);
            }
        }
    }
}

// ----- INFO ----------------------------------------------------------------------------------

/// `name -> calls` of the commands that ran between two `INFO commandstats` (the `INFO`, `SCAN`
/// and `TXU.*` commands left out), sorted by name.
pub fn command_calls_delta(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> Vec<(String, i64)> {
    let calls = |m: &HashMap<String, String>, k: &str| -> i64 {
        m.get(k)
            .and_then(|v| v.split(',').find_map(|p| p.strip_prefix("calls=")))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let mut out: Vec<(String, i64)> = after
        .keys()
        .filter_map(|k| {
            let name = k.strip_prefix("cmdstat_")?;
            let n = calls(after, k) - calls(before, k);
            (n > 0 && !matches!(name, "info" | "scan") && !name.starts_with("txu."))
                .then(|| (name.to_string(), n))
        })
        .collect();
    out.sort();
    out
}

/// `after - before` of a numeric `INFO` field, `None` when either lacks it.
pub fn info_delta(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
    field: &str,
) -> Option<i64> {
    let get = |m: &HashMap<String, String>| m.get(field)?.parse::<i64>().ok();
    Some(get(after)? - get(before)?)
}

/// A numeric `INFO` field.
pub fn info_u64(info: &HashMap<String, String>, field: &str) -> Result<u64, String> {
    info.get(field)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("INFO has no numeric field {field}"))
}
