//! What two servers holding the same data must agree on, or one server before and after
//! something that must change nothing: `DEBUG DIGEST`, every key's absolute expiry and every
//! stream's `XINFO STREAM FULL` (which the digest does not cover).

use super::{show, Server};
use redis::Value;
use std::collections::BTreeMap;

/// What two servers holding the same data must agree on.
#[derive(Debug, PartialEq)]
pub struct State {
    pub digest: String,
    /// `PEXPIRETIME` of every key (-1 for none).
    pub expire_at: BTreeMap<String, i64>,
    /// `XINFO STREAM <key> FULL` of every stream, rendered.
    pub streams: BTreeMap<String, String>,
}

impl State {
    /// `strict`: keep consumers' `seen-time`/`active-time`. Those record when a consumer was
    /// last seen by *this* server: a replica, or a server replaying its AOF, sets them to its
    /// own clock when it applies a propagated XREADGROUP/XAUTOCLAIM (as `XCLAIM`).
    pub fn of(s: &Server, strict: bool) -> State {
        let mut con = s.conn();
        let digest = s.digest();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        keys.sort();
        let mut expire_at = BTreeMap::new();
        let mut streams = BTreeMap::new();
        for k in keys {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut con).unwrap();
            assert_ne!(at, -2, "key {k} vanished while reading the state");
            let ty: String = redis::cmd("TYPE").arg(&k).query(&mut con).unwrap();
            if ty == "stream" {
                let info: Value = redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(&k)
                    .arg("FULL")
                    .query(&mut con)
                    .unwrap();
                streams.insert(k.clone(), render(&info, strict));
            }
            expire_at.insert(k, at);
        }
        State {
            digest,
            expire_at,
            streams,
        }
    }

    pub fn assert_same(&self, other: &State, what: &str) {
        assert_eq!(
            self.expire_at, other.expire_at,
            "{what}: keys or absolute expiries differ"
        );
        assert_eq!(self.streams, other.streams, "{what}: streams differ");
        assert_eq!(self.digest, other.digest, "{what}: DEBUG DIGEST differs");
    }

    pub fn keys_with_ttl(&self) -> usize {
        self.expire_at.values().filter(|&&t| t > 0).count()
    }
}

/// A reply as text; in flat `name, value, ...` arrays, the pairs named `seen-time` and
/// `active-time` are left out unless `strict`.
pub fn render(v: &Value, strict: bool) -> String {
    match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < items.len() {
                let name = match &items[i] {
                    Value::BulkString(b) => Some(b.as_slice()),
                    _ => None,
                };
                if !strict && matches!(name, Some(b"seen-time") | Some(b"active-time")) {
                    i += 2;
                    continue;
                }
                out.push(render(&items[i], strict));
                i += 1;
            }
            format!("[{}]", out.join(", "))
        }
        Value::BulkString(b) => format!("{:?}", show(b)),
        other => format!("{other:?}"),
    }
}
