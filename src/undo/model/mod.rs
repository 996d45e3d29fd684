//! A small in-memory keyspace that behaves like Redis for the commands the tests use: forward
//! writes, the recipes' reads, `DUMP`/`RESTORE`, and every compensating command. Test-only:
//! it lets the undo tests check, without a server, that rolling a transaction back restores
//! the keyspace exactly.
//!
//! Reads, strings and key-space commands are here; hashes, sets, sorted sets and lists are in
//! `collections`.

mod collections;
mod encoding;

pub use encoding::{Hash, List, Set, Val, ZSet};

use crate::undo::recipe::Read;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Obj {
    pub val: Val,
    pub exp: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Db {
    pub keys: BTreeMap<Vec<u8>, Obj>,
    pub now: i64,
    pub resp3: bool,
    pub rng: u64,
}

impl PartialEq for Db {
    fn eq(&self, o: &Db) -> bool {
        self.keys == o.keys
    }
}

impl Db {
    /// Whether this keyspace is what rolling back must give back for `before`: the same keys
    /// and expiries, each compact value in the very same representation, each large one with
    /// the same contents (see [`Val::restores`]). The first difference otherwise.
    pub fn restores(&self, before: &Db) -> Result<(), String> {
        let names = |d: &Db| d.keys.keys().cloned().collect::<Vec<_>>();
        if names(self) != names(before) {
            return Err(format!(
                "keys {:?}, were {:?}",
                names(self)
                    .iter()
                    .map(|k| show(std::slice::from_ref(k)))
                    .collect::<Vec<_>>(),
                names(before)
                    .iter()
                    .map(|k| show(std::slice::from_ref(k)))
                    .collect::<Vec<_>>()
            ));
        }
        for (k, b) in &before.keys {
            let a = &self.keys[k];
            if a.exp != b.exp || !a.val.restores(&b.val) {
                return Err(format!(
                    "{}: {a:?}, was {b:?}",
                    show(std::slice::from_ref(k))
                ));
            }
        }
        Ok(())
    }
}

type R = Result<Read, String>;

const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn int(b: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| "ERR value is not an integer or out of range".to_string())
}

fn float(b: &[u8]) -> Result<f64, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| !f.is_nan())
        .ok_or_else(|| "ERR value is not a valid float".to_string())
}

fn bulk(b: &[u8]) -> Read {
    Read::Bulk(b.to_vec())
}

fn ok() -> R {
    Ok(Read::Bulk(b"OK".to_vec()))
}

/// Redis's index range normalization (LRANGE, ZRANGE by rank...): inclusive bounds.
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let n = len as i64;
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s += n;
    }
    if e < 0 {
        e += n;
    }
    if s < 0 {
        s = 0;
    }
    if s > e || s >= n {
        return None;
    }
    if e >= n {
        e = n - 1;
    }
    Some((s as usize, e as usize))
}

/// A ZRANGEBYSCORE bound: (value, exclusive).
fn score_bound(b: &[u8]) -> Result<(f64, bool), String> {
    match b.strip_prefix(b"(") {
        Some(rest) => Ok((float(rest)?, true)),
        None => Ok((float(b)?, false)),
    }
}

fn in_range(s: f64, min: (f64, bool), max: (f64, bool)) -> bool {
    let lo = if min.1 { s > min.0 } else { s >= min.0 };
    let hi = if max.1 { s < max.0 } else { s <= max.0 };
    lo && hi
}

fn sorted(z: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut v: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

impl Db {
    pub fn new(now: i64) -> Db {
        Db {
            keys: BTreeMap::new(),
            now,
            resp3: false,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn rand(&mut self, n: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as usize
    }

    /// Drops keys whose deadline has passed (Redis does it lazily; nothing can tell).
    pub fn purge(&mut self) {
        let now = self.now;
        self.keys.retain(|_, o| o.exp.is_none_or(|t| t > now));
    }

    /// Redis deletes collections that become empty, and converts lists that grew or shrank.
    fn tidy(&mut self) {
        for o in self.keys.values_mut() {
            o.val.settle();
        }
        self.keys.retain(|_, o| match &o.val {
            Val::Str(_) => true,
            Val::Hash(h) => !h.is_empty(),
            Val::Set(s) => !s.is_empty(),
            Val::ZSet(z) => !z.is_empty(),
            Val::List(l) => !l.is_empty(),
        });
    }

    fn score(&self, s: f64) -> Read {
        if self.resp3 {
            Read::Double(s)
        } else {
            Read::Bulk(format!("{s}").into_bytes())
        }
    }

    /// Members with their scores: nested `[[m, s], ...]` (RESP3 replies), or flat
    /// `[m, s, m, s, ...]`.
    fn scored(&self, pairs: &[(Vec<u8>, f64)], nested: bool) -> Read {
        Read::Array(if nested {
            pairs
                .iter()
                .map(|(m, s)| Read::Array(vec![bulk(m), self.score(*s)]))
                .collect()
        } else {
            pairs
                .iter()
                .flat_map(|(m, s)| [bulk(m), self.score(*s)])
                .collect()
        })
    }

    /// Runs one command; errors come back as `Read::Error`.
    pub fn call(&mut self, argv: &[Vec<u8>]) -> Read {
        self.purge();
        let r = self.run(argv);
        self.tidy();
        self.purge();
        match r {
            Ok(r) => r,
            Err(e) => Read::Error(e.into_bytes()),
        }
    }

    fn get_str(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self.keys.get(k) {
            None => Ok(None),
            Some(Obj {
                val: Val::Str(v), ..
            }) => Ok(Some(v.clone())),
            Some(_) => Err(WT.into()),
        }
    }

    fn set_str(&mut self, k: &[u8], v: Vec<u8>, exp: Option<i64>) {
        self.keys.insert(
            k.to_vec(),
            Obj {
                val: Val::Str(v),
                exp,
            },
        );
    }

    /// The key's collection of the wanted type, created (without TTL) when absent and
    /// `create`.
    fn coll(&mut self, k: &[u8], empty: Val, create: bool) -> Result<Option<&mut Val>, String> {
        let same = |v: &Val| std::mem::discriminant(v) == std::mem::discriminant(&empty);
        match self.keys.get(k) {
            Some(o) if !same(&o.val) => return Err(WT.into()),
            None if !create => return Ok(None),
            None => {
                self.keys.insert(
                    k.to_vec(),
                    Obj {
                        val: empty,
                        exp: None,
                    },
                );
            }
            _ => {}
        }
        Ok(self.keys.get_mut(k).map(|o| &mut o.val))
    }

    fn hash(&mut self, k: &[u8], create: bool) -> Result<Option<&mut Hash>, String> {
        Ok(match self.coll(k, Val::Hash(Hash::default()), create)? {
            Some(Val::Hash(h)) => Some(h),
            _ => None,
        })
    }

    fn set(&mut self, k: &[u8], create: bool) -> Result<Option<&mut Set>, String> {
        Ok(match self.coll(k, Val::Set(Set::default()), create)? {
            Some(Val::Set(s)) => Some(s),
            _ => None,
        })
    }

    fn zset(&mut self, k: &[u8], create: bool) -> Result<Option<&mut ZSet>, String> {
        Ok(match self.coll(k, Val::ZSet(ZSet::default()), create)? {
            Some(Val::ZSet(z)) => Some(z),
            _ => None,
        })
    }

    fn list(&mut self, k: &[u8], create: bool) -> Result<Option<&mut List>, String> {
        Ok(match self.coll(k, Val::List(List::default()), create)? {
            Some(Val::List(l)) => Some(l),
            _ => None,
        })
    }

    fn check_list(&self, k: &[u8]) -> Result<(), String> {
        match self.keys.get(k) {
            Some(Obj {
                val: Val::List(_), ..
            })
            | None => Ok(()),
            _ => Err(WT.into()),
        }
    }

    /// Runs a read, string or key-space command, or hands the command to `run_collection`.
    #[allow(clippy::too_many_lines)]
    fn run(&mut self, argv: &[Vec<u8>]) -> R {
        let name = lower(&argv[0]);
        let a = |i: usize| arg(argv, i, &name);
        let now = self.now;
        match name.as_str() {
            // Reads.
            "get" => Ok(self.get_str(a(1)?)?.map_or(Read::Nil, Read::Bulk)),
            "pexpiretime" => Ok(Read::Int(match self.keys.get(a(1)?) {
                None => -2,
                Some(o) => o.exp.unwrap_or(-1),
            })),
            "exists" => Ok(Read::Int(self.keys.contains_key(a(1)?) as i64)),
            "dump" => Ok(match self.keys.get(a(1)?) {
                None => Read::Nil,
                Some(o) => Read::Bulk(bincode::serialize(&o.val).unwrap()),
            }),
            "object" => {
                assert_eq!(lower(a(1)?), "encoding");
                Ok(self
                    .keys
                    .get(a(2)?)
                    .map_or(Read::Nil, |o| bulk(o.val.encoding().as_bytes())))
            }
            "hmget" => {
                let h = self.hash(a(1)?, false)?.cloned().unwrap_or_default();
                Ok(Read::Array(
                    argv[2..]
                        .iter()
                        .map(|f| h.get(f).map_or(Read::Nil, |v| bulk(v)))
                        .collect(),
                ))
            }
            "smismember" | "sismember" => {
                let s = self.set(a(1)?, false)?.cloned().unwrap_or_default();
                let flags: Vec<Read> = argv[2..]
                    .iter()
                    .map(|m| Read::Int(s.contains(m) as i64))
                    .collect();
                if name == "sismember" {
                    Ok(flags.into_iter().next().unwrap())
                } else {
                    Ok(Read::Array(flags))
                }
            }
            "zmscore" => {
                let z = self.zset(a(1)?, false)?.cloned().unwrap_or_default();
                Ok(Read::Array(
                    argv[2..]
                        .iter()
                        .map(|m| z.get(m).map_or(Read::Nil, |s| self.score(*s)))
                        .collect(),
                ))
            }
            "llen" => Ok(Read::Int(
                self.list(a(1)?, false)?.map_or(0, |l| l.len()) as i64
            )),
            "lindex" => {
                let i = int(a(2)?)?;
                let l = self.list(a(1)?, false)?.cloned().unwrap_or_default();
                let i = if i < 0 { i + l.len() as i64 } else { i };
                Ok(usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .map_or(Read::Nil, |v| bulk(v)))
            }
            "lrange" => {
                let (s, e) = (int(a(2)?)?, int(a(3)?)?);
                let l = self.list(a(1)?, false)?.cloned().unwrap_or_default();
                Ok(Read::Array(match range(s, e, l.len()) {
                    None => vec![],
                    Some((s, e)) => l.range(s..=e).map(|v| bulk(v)).collect(),
                }))
            }
            "zrange" => {
                assert!(argv.iter().any(|x| lower(x) == "withscores"));
                let z = self.zset(a(1)?, false)?.cloned().unwrap_or_default();
                let all = sorted(z.scores());
                let picked: Vec<(Vec<u8>, f64)> = if argv.iter().any(|x| lower(x) == "byscore") {
                    let (min, max) = (score_bound(a(2)?)?, score_bound(a(3)?)?);
                    all.into_iter()
                        .filter(|(_, s)| in_range(*s, min, max))
                        .collect()
                } else {
                    match range(int(a(2)?)?, int(a(3)?)?, all.len()) {
                        None => vec![],
                        Some((s, e)) => all[s..=e].to_vec(),
                    }
                };
                Ok(self.scored(&picked, self.resp3))
            }

            // Strings.
            "set" => {
                let (k, v) = (a(1)?, a(2)?);
                let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
                let mut exp = None;
                let mut i = 3;
                while i < argv.len() {
                    match lower(&argv[i]).as_str() {
                        "nx" => nx = true,
                        "xx" => xx = true,
                        "get" => get = true,
                        "keepttl" => keep = true,
                        "px" | "pxat" => {
                            let t = int(a(i + 1)?)?;
                            if t <= 0 {
                                return Err("ERR invalid expire time in 'set' command".into());
                            }
                            exp = Some(if lower(&argv[i]) == "px" { now + t } else { t });
                            i += 1;
                        }
                        _ => return Err("ERR syntax error".into()),
                    }
                    i += 1;
                }
                let old = if get { self.get_str(k)? } else { None };
                let exists = self.keys.get(k);
                let reply = if get {
                    old.clone().map_or(Read::Nil, Read::Bulk)
                } else {
                    Read::Bulk(b"OK".to_vec())
                };
                if (nx && exists.is_some()) || (xx && exists.is_none()) {
                    return Ok(if get { reply } else { Read::Nil });
                }
                let exp = if keep {
                    exists.and_then(|o| o.exp)
                } else {
                    exp
                };
                self.set_str(k, v.to_vec(), exp);
                Ok(reply)
            }
            "setnx" => {
                if self.keys.contains_key(a(1)?) {
                    Ok(Read::Int(0))
                } else {
                    self.set_str(a(1)?, a(2)?.to_vec(), None);
                    Ok(Read::Int(1))
                }
            }
            "getset" => {
                let old = self.get_str(a(1)?)?;
                self.set_str(a(1)?, a(2)?.to_vec(), None);
                Ok(old.map_or(Read::Nil, Read::Bulk))
            }
            "getdel" => {
                let old = self.get_str(a(1)?)?;
                self.keys.remove(a(1)?);
                Ok(old.map_or(Read::Nil, Read::Bulk))
            }
            "getex" => {
                let Some(old) = self.get_str(a(1)?)? else {
                    return Ok(Read::Nil);
                };
                let o = self.keys.get_mut(a(1)?).unwrap();
                match argv.get(2).map(|x| lower(x)).as_deref() {
                    Some("persist") => o.exp = None,
                    Some("px") => o.exp = Some(now + int(a(3)?)?),
                    _ => {}
                }
                Ok(Read::Bulk(old))
            }
            "append" => {
                let mut v = self.get_str(a(1)?)?.unwrap_or_default();
                v.extend_from_slice(a(2)?);
                let exp = self.keys.get(a(1)?).and_then(|o| o.exp);
                let n = v.len();
                self.set_str(a(1)?, v, exp);
                Ok(Read::Int(n as i64))
            }
            "incr" | "decr" | "incrby" | "decrby" => {
                let by = match name.as_str() {
                    "incr" => 1,
                    "decr" => -1,
                    "incrby" => int(a(2)?)?,
                    _ => -int(a(2)?)?,
                };
                let cur = match self.get_str(a(1)?)? {
                    None => 0,
                    Some(v) => int(&v)?,
                };
                let n = cur
                    .checked_add(by)
                    .ok_or("ERR increment or decrement would overflow")?;
                let exp = self.keys.get(a(1)?).and_then(|o| o.exp);
                self.set_str(a(1)?, n.to_string().into_bytes(), exp);
                Ok(Read::Int(n))
            }
            "mset" | "msetnx" => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = argv[1..]
                    .chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                if name == "msetnx" && pairs.iter().any(|(k, _)| self.keys.contains_key(k)) {
                    return Ok(Read::Int(0));
                }
                for (k, v) in pairs {
                    self.set_str(&k, v, None);
                }
                if name == "msetnx" {
                    Ok(Read::Int(1))
                } else {
                    ok()
                }
            }
            // Keys.
            "expire" | "pexpire" | "expireat" | "pexpireat" => {
                let t = int(a(2)?)?;
                let when = match name.as_str() {
                    "expire" => now + t * 1000,
                    "pexpire" => now + t,
                    "expireat" => t * 1000,
                    _ => t,
                };
                let flag = argv.get(3).map(|f| lower(f));
                let Some(o) = self.keys.get_mut(a(1)?) else {
                    return Ok(Read::Int(0));
                };
                let cur = o.exp;
                let go = match flag.as_deref() {
                    Some("nx") => cur.is_none(),
                    Some("xx") => cur.is_some(),
                    Some("gt") => cur.is_some_and(|c| when > c),
                    Some("lt") => cur.is_none_or(|c| when < c),
                    _ => true,
                };
                if !go {
                    return Ok(Read::Int(0));
                }
                if when <= now {
                    self.keys.remove(a(1)?);
                } else {
                    o.exp = Some(when);
                }
                Ok(Read::Int(1))
            }
            "persist" => match self.keys.get_mut(a(1)?) {
                Some(o) if o.exp.is_some() => {
                    o.exp = None;
                    Ok(Read::Int(1))
                }
                _ => Ok(Read::Int(0)),
            },
            "del" | "unlink" => Ok(Read::Int(
                argv[1..]
                    .iter()
                    .filter(|k| self.keys.remove(*k).is_some())
                    .count() as i64,
            )),
            "rename" | "renamenx" => {
                let (src, dst) = (a(1)?, a(2)?);
                if !self.keys.contains_key(src) {
                    return Err("ERR no such key".into());
                }
                let nx = name == "renamenx";
                if src == dst {
                    return if nx { Ok(Read::Int(0)) } else { ok() };
                }
                if nx && self.keys.contains_key(dst) {
                    return Ok(Read::Int(0));
                }
                let o = self.keys.remove(src).unwrap();
                self.keys.insert(dst.to_vec(), o);
                if nx {
                    Ok(Read::Int(1))
                } else {
                    ok()
                }
            }
            "copy" => {
                let (src, dst) = (a(1)?, a(2)?);
                if src == dst {
                    return Err("ERR source and destination objects are the same".into());
                }
                let replace = argv.get(3).is_some_and(|r| lower(r) == "replace");
                let Some(o) = self.keys.get(src).cloned() else {
                    return Ok(Read::Int(0));
                };
                if self.keys.contains_key(dst) && !replace {
                    return Ok(Read::Int(0));
                }
                self.keys.insert(dst.to_vec(), o);
                Ok(Read::Int(1))
            }
            "restore" => {
                let (k, ttl, payload) = (a(1)?, int(a(2)?)?, a(3)?);
                let opts: Vec<String> = argv[4..].iter().map(|o| lower(o)).collect();
                let replace = opts.iter().any(|o| o == "replace");
                let abs = opts.iter().any(|o| o == "absttl");
                if ttl < 0 {
                    return Err("ERR Invalid TTL value, must be >= 0".into());
                }
                if self.keys.contains_key(k) && !replace {
                    return Err("BUSYKEY Target key name already exists.".into());
                }
                let mut val: Val = bincode::deserialize(payload)
                    .map_err(|_| "ERR DUMP payload version or checksum are wrong".to_string())?;
                val.reencode();
                let exp = match (ttl, abs) {
                    (0, _) => None,
                    (t, true) => Some(t),
                    (t, false) => Some(now + t),
                };
                if exp.is_some_and(|t| t <= now) {
                    self.keys.remove(k);
                    return ok();
                }
                self.keys.insert(k.to_vec(), Obj { val, exp });
                ok()
            }
            _ => self.run_collection(&name, argv),
        }
    }
}

/// `argv[i]`, or the server's arity error.
fn arg<'a>(argv: &'a [Vec<u8>], i: usize, name: &str) -> Result<&'a [u8], String> {
    argv.get(i)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("ERR wrong number of arguments for '{name}'"))
}

/// Positions of the keys a forward command writes (what the executor passes to `plan`).
pub fn write_keys(argv: &[Vec<u8>]) -> Vec<usize> {
    let name = lower(&argv[0]);
    match name.as_str() {
        "mset" | "msetnx" => (1..argv.len()).step_by(2).collect(),
        "smove" | "lmove" | "rpoplpush" | "rename" | "renamenx" => vec![1, 2],
        "copy" => vec![2],
        "zmpop" | "lmpop" => {
            let n: usize = String::from_utf8_lossy(&argv[1]).parse().unwrap();
            (2..2 + n).collect()
        }
        "del" | "unlink" => (1..argv.len()).collect(),
        _ => vec![1],
    }
}

/// xorshift64*: deterministic, no crates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A command as one line of text, for failure messages.
pub fn show(c: &[Vec<u8>]) -> String {
    c.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
