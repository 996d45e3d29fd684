//! RESP on the wire: encoding commands, finding where a RESP2/RESP3 reply ends, taking simple
//! replies apart, and [`RawConn`], a plain TCP client that hands out replies as raw bytes.
//!
//! The integration tests (through `tests/common`) and the benchmark (`benches/txu`, with
//! `#[path]`) both compile this file, so it uses nothing but `std`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Read timeout of [`RawConn::connect`]: a read that gets nothing for this long fails.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(10);

// ----- encoding ----------------------------------------------------------------------------------

/// Appends `v` as a RESP bulk string.
pub fn push_bulk(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(v.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

/// Appends a command as a RESP array of bulk strings.
pub fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        push_bulk(out, a);
    }
}

/// A command encoded as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    push_command(&mut out, args);
    out
}

// ----- parsing -----------------------------------------------------------------------------------

/// Index of the CR of the first CRLF at or after `from`.
pub fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Parse the length line starting at `pos + 1`; returns (number, index after CRLF).
fn header_int(buf: &[u8], pos: usize) -> Result<Option<(i64, usize)>, String> {
    let Some(end) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[pos + 1..end])
        .map_err(|_| format!("non-UTF-8 length at byte {pos}"))?;
    let n = text.parse::<i64>().map_err(|_| {
        format!(
            "bad length {text:?} for type {:?} at byte {pos}",
            buf[pos] as char
        )
    })?;
    Ok(Some((n, end + 2)))
}

/// Length in bytes of the first complete RESP2/RESP3 reply in `buf`:
/// `Ok(None)` when more bytes are needed, `Err` on malformed input.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    reply_end(buf, 0)
}

/// End index (exclusive) of the reply starting at `pos`: `Ok(None)` when more bytes are needed.
pub fn reply_end(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    match t {
        // Line-terminated: simple string, error, integer, RESP3 null, double,
        // boolean, big number.
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
            Ok(find_crlf(buf, pos + 1).map(|end| end + 2))
        }
        // Length-prefixed: bulk string, bulk error, verbatim string.
        b'$' | b'!' | b'=' => {
            let Some((n, start)) = header_int(buf, pos)? else {
                return Ok(None);
            };
            if n == -1 && t == b'$' {
                return Ok(Some(start)); // RESP2 null bulk
            }
            if n < 0 {
                return Err(format!("negative length {n} at byte {pos}"));
            }
            let end = start + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(format!("bulk at byte {pos} not terminated by CRLF"));
            }
            Ok(Some(end))
        }
        // Aggregates: array, set, push (n elements), map, attribute (2n).
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some((n, mut cur)) = header_int(buf, pos)? else {
                return Ok(None);
            };
            if n == -1 && t == b'*' {
                return Ok(Some(cur)); // RESP2 null array
            }
            if n < 0 {
                return Err(format!("negative count {n} at byte {pos}"));
            }
            let elems = if t == b'%' || t == b'|' { 2 * n } else { n };
            for _ in 0..elems {
                match reply_end(buf, cur)? {
                    Some(e) => cur = e,
                    None => return Ok(None),
                }
            }
            if t == b'|' {
                // An attribute prefixes the reply it describes.
                return reply_end(buf, cur);
            }
            Ok(Some(cur))
        }
        other => Err(format!(
            "unknown RESP type byte {:?} (0x{other:02x}) at byte {pos}",
            other as char
        )),
    }
}

/// Number of commands in a request: RESP arrays, or inline lines. Panics on an incomplete one.
pub fn count_requests(mut buf: &[u8]) -> usize {
    let mut n = 0;
    while !buf.is_empty() {
        let len = if buf[0] == b'*' {
            match reply_len(buf) {
                Ok(Some(len)) => len,
                _ => panic!("request is not complete RESP: {:?}", show(buf)),
            }
        } else {
            match find_crlf(buf, 0) {
                Some(i) => i + 2,
                None => panic!("inline request must end with CRLF"),
            }
        };
        buf = &buf[len..];
        n += 1;
    }
    n
}

// ----- taking replies apart ----------------------------------------------------------------------

/// The body of a bulk string reply; `None` for anything else (a null bulk included).
pub fn bulk_body(r: &[u8]) -> Option<&[u8]> {
    if r.first() != Some(&b'$') {
        return None;
    }
    let (n, start) = header_int(r, 0).ok()??;
    let n = usize::try_from(n).ok()?;
    r.get(start..start + n)
}

/// The element count of an array reply `r` (not a null array) and where its first element
/// starts.
pub fn array_header(r: &[u8]) -> Option<(usize, usize)> {
    if r.first() != Some(&b'*') {
        return None;
    }
    let (n, start) = header_int(r, 0).ok()??;
    Some((usize::try_from(n).ok()?, start))
}

/// The elements of `r`, exactly one RESP2 array reply, as raw replies; `None` when `r` is not
/// an array (a null array included) or has bytes after it.
pub fn array_items(r: &[u8]) -> Option<Vec<&[u8]>> {
    let (n, mut cur) = array_header(r)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let end = reply_end(r, cur).ok()??;
        out.push(&r[cur..end]);
        cur = end;
    }
    (cur == r.len()).then_some(out)
}

/// The elements of a flat array of bulk strings, simple strings and integers, as text (a null
/// bulk string as "").
pub fn flat_array(r: &[u8]) -> Option<Vec<String>> {
    array_items(r)?
        .into_iter()
        .map(|e| match e.first()? {
            b'$' => Some(bulk_body(e).map(show).unwrap_or_default()),
            b'+' | b':' => Some(show(&e[1..e.len() - 2])),
            _ => None,
        })
        .collect()
}

/// The field/value pairs of a map sent as a RESP2 flat array (`TXU.STATUS`, a task of
/// `TXU.TASKS`): scalar values as text (a null as ""), a nested array as its raw RESP text.
pub fn fields(r: &[u8]) -> Option<HashMap<String, String>> {
    let items = array_items(r)?;
    if items.len() % 2 != 0 {
        return None;
    }
    let scalar = |e: &[u8]| match e.first()? {
        b'$' => Some(bulk_body(e).map(show).unwrap_or_default()),
        b'+' | b':' => Some(show(&e[1..e.len() - 2])),
        _ => None,
    };
    items
        .chunks(2)
        .map(|p| {
            let (name, value) = (p.first()?, p.get(1)?);
            Some((scalar(name)?, scalar(value).unwrap_or_else(|| show(value))))
        })
        .collect()
}

/// Parse `INFO` output into `field -> value`.
pub fn parse_info(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Bytes as a readable string (for messages).
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes made readable with escapes, cut after 400 (for messages about binary data).
pub fn esc(bytes: &[u8]) -> String {
    const MAX: usize = 400;
    let mut s: String = bytes
        .iter()
        .take(MAX)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > MAX {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

// ----- the client --------------------------------------------------------------------------------

/// A plain TCP connection speaking RESP, returning replies as raw bytes.
///
/// The core ([`RawConn::open`], [`RawConn::write`], [`RawConn::next_reply`]) returns errors;
/// the test conveniences ([`RawConn::connect`], [`RawConn::cmd`], [`RawConn::read_reply`] …)
/// panic instead. Every read waits at most the connection's timeout.
pub struct RawConn {
    stream: TcpStream,
    /// Received bytes are `buf[start..end]`; the rest is room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
}

impl RawConn {
    /// Connects to 127.0.0.1:`port`; a read that gets nothing for `timeout` fails.
    pub fn open(port: u16, timeout: Duration) -> Result<RawConn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        Ok(RawConn {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            timeout,
        })
    }

    /// Sends bytes as they are.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write to server: {e}"))
    }

    /// The next reply, as a range for [`RawConn::reply`] (valid until the next read).
    pub fn next_reply(&mut self) -> Result<Range<usize>, String> {
        loop {
            if let Some(r) = self.buffered_reply()? {
                return Ok(r);
            }
            if !self.read_more()? {
                return Err(format!("no reply within {:?}", self.timeout));
            }
        }
    }

    /// The bytes of a reply from [`RawConn::next_reply`].
    pub fn reply(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// One command, its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Vec<u8>, String> {
        self.write(&encode_command(args))?;
        let r = self.next_reply()?;
        Ok(self.reply(r).to_vec())
    }

    /// Takes a complete reply off the buffer, if there is one.
    fn buffered_reply(&mut self) -> Result<Option<Range<usize>>, String> {
        let end = reply_end(&self.buf[..self.end], self.start)
            .map_err(|e| format!("malformed reply ({e})"))?;
        Ok(end.map(|end| {
            let r = self.start..end;
            self.start = end;
            r
        }))
    }

    /// One read from the socket: `Ok(false)` when its read timeout passed without data.
    fn read_more(&mut self) -> Result<bool, String> {
        // Move the partial reply to the front; grow when it fills the buffer.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(false)
                }
                Err(e) => return Err(format!("read from server: {e}")),
            }
        }
    }

    // ----- test conveniences: they panic ---------------------------------------------------------

    /// Connects with [`RAW_READ_TIMEOUT`]; panics when it cannot.
    pub fn connect(port: u16) -> RawConn {
        RawConn::open(port, RAW_READ_TIMEOUT).unwrap_or_else(|e| panic!("RawConn: {e}"))
    }

    /// Send one command, encoded as a RESP array of bulk strings.
    pub fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode_command(args));
    }

    /// Send bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.write(bytes).unwrap_or_else(|e| panic!("RawConn: {e}"));
    }

    /// Raw bytes of exactly one complete reply (a push or an attribute with its reply counts as
    /// one). Panics when a read gets nothing for the connection's timeout.
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.next_reply() {
            Ok(r) => self.reply(r).to_vec(),
            Err(e) => panic!("RawConn: {e}; buffered so far: {:?}", show(self.pending())),
        }
    }

    /// Like [`RawConn::read_reply`] but returns `None` when no complete reply arrives within
    /// `wait` (e.g. to prove that nothing is sent).
    pub fn try_read_reply(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let got = loop {
            match self.buffered_reply() {
                Ok(Some(r)) => break Ok(Some(r)),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(None);
            }
            let remaining = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(remaining))
                .expect("set read timeout");
            if let Err(e) = self.read_more() {
                break Err(e);
            }
        };
        self.stream
            .set_read_timeout(Some(self.timeout))
            .expect("set read timeout");
        match got {
            Ok(r) => r.map(|r| self.reply(r).to_vec()),
            Err(e) => panic!("RawConn: {e}; buffered so far: {:?}", show(self.pending())),
        }
    }

    /// Send one command and read one reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read_reply()
    }

    /// Switch this connection to RESP3 (`HELLO 3`) and return the raw reply.
    pub fn hello3(&mut self) -> Vec<u8> {
        let r = self.cmd(&[b"HELLO", b"3"]);
        assert_eq!(r.first(), Some(&b'%'), "HELLO 3 failed: {:?}", show(&r));
        r
    }

    /// Bytes received but not yet returned as a reply.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Close the write side (the server sees EOF after the sent commands).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
