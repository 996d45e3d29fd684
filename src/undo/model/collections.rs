//! The model's hash, set, sorted-set and list commands.

use super::{arg, bulk, float, in_range, int, lower, ok, range, score_bound, sorted, Db, R};
use crate::undo::recipe::Read;

impl Db {
    fn zpop(&mut self, k: &[u8], max: bool, count: usize) -> Result<Vec<(Vec<u8>, f64)>, String> {
        let Some(z) = self.zset(k, false)? else {
            return Ok(vec![]);
        };
        let mut all = sorted(z.scores());
        if max {
            all.reverse();
        }
        all.truncate(count);
        for (m, _) in &all {
            z.remove(m);
        }
        Ok(all)
    }

    fn lpop(&mut self, k: &[u8], left: bool, count: usize) -> Result<Option<Vec<Vec<u8>>>, String> {
        let Some(l) = self.list(k, false)? else {
            return Ok(None);
        };
        let mut out = vec![];
        for _ in 0..count {
            let e = if left { l.pop_front() } else { l.pop_back() };
            match e {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(Some(out))
    }

    /// Runs a hash, set, sorted-set or list command.
    #[allow(clippy::too_many_lines)]
    pub(super) fn run_collection(&mut self, name: &str, argv: &[Vec<u8>]) -> R {
        let a = |i: usize| arg(argv, i, name);
        match name {
            // Hashes.
            "hset" => {
                let h = self.hash(a(1)?, true)?.unwrap();
                let mut added = 0;
                for c in argv[2..].chunks(2) {
                    if h.insert(c[0].clone(), c[1].clone()).is_none() {
                        added += 1;
                    }
                }
                Ok(Read::Int(added))
            }
            "hsetnx" => {
                let h = self.hash(a(1)?, true)?.unwrap();
                if h.contains_key(a(2)?) {
                    return Ok(Read::Int(0));
                }
                h.insert(a(2)?.to_vec(), a(3)?.to_vec());
                Ok(Read::Int(1))
            }
            "hdel" => {
                let Some(h) = self.hash(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                Ok(Read::Int(
                    argv[2..].iter().filter(|f| h.remove(f).is_some()).count() as i64,
                ))
            }
            "hincrby" => {
                let by = int(a(3)?)?;
                if let Some(h) = self.hash(a(1)?, false)? {
                    if let Some(v) = h.get(a(2)?) {
                        int(v)?;
                    }
                }
                let h = self.hash(a(1)?, true)?.unwrap();
                let cur = h.get(a(2)?).map_or(Ok(0), |v| int(v))?;
                let n = cur.checked_add(by).ok_or("ERR overflow")?;
                h.insert(a(2)?.to_vec(), n.to_string().into_bytes());
                Ok(Read::Int(n))
            }

            // Sets.
            "sadd" => {
                let s = self.set(a(1)?, true)?.unwrap();
                Ok(Read::Int(
                    argv[2..].iter().filter(|m| s.insert(m.to_vec())).count() as i64,
                ))
            }
            "srem" => {
                let Some(s) = self.set(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                Ok(Read::Int(
                    argv[2..].iter().filter(|m| s.remove(m)).count() as i64
                ))
            }
            "smove" => {
                let (src, dst, m) = (a(1)?, a(2)?, a(3)?);
                let has = self.set(src, false)?.is_some_and(|s| s.contains(m));
                self.set(dst, false)?;
                if src == dst || !has {
                    return Ok(Read::Int(has as i64));
                }
                self.set(src, false)?.unwrap().remove(m);
                self.set(dst, true)?.unwrap().insert(m.to_vec());
                Ok(Read::Int(1))
            }
            "spop" => {
                let count = argv.get(2).map(|c| int(c)).transpose()?;
                let mut out = vec![];
                let n = count.unwrap_or(1);
                for _ in 0..n {
                    let len = match self.set(a(1)?, false)? {
                        Some(s) if !s.is_empty() => s.len(),
                        _ => break,
                    };
                    let i = self.rand(len);
                    let s = self.set(a(1)?, false)?.unwrap();
                    let m = s.iter().nth(i).unwrap().clone();
                    s.remove(&m);
                    out.push(bulk(&m));
                }
                Ok(match count {
                    Some(_) => Read::Array(out),
                    None => out.into_iter().next().unwrap_or(Read::Nil),
                })
            }

            // Sorted sets.
            "zadd" => {
                let (mut nx, mut xx, mut gt, mut lt, mut incr) =
                    (false, false, false, false, false);
                let mut i = 2;
                while i < argv.len() {
                    match lower(&argv[i]).as_str() {
                        "nx" => nx = true,
                        "xx" => xx = true,
                        "gt" => gt = true,
                        "lt" => lt = true,
                        "ch" => {}
                        "incr" => incr = true,
                        _ => break,
                    }
                    i += 1;
                }
                let rest = &argv[i..];
                if rest.is_empty()
                    || !rest.len().is_multiple_of(2)
                    || (nx && xx)
                    || (nx && (gt || lt))
                    || (gt && lt)
                    || (incr && rest.len() != 2)
                {
                    return Err("ERR syntax error".into());
                }
                let pairs: Vec<(f64, Vec<u8>)> = rest
                    .chunks(2)
                    .map(|c| Ok((float(&c[0])?, c[1].clone())))
                    .collect::<Result<_, String>>()?;
                let z = self.zset(a(1)?, true)?.unwrap();
                let mut last = None;
                let mut added = 0;
                for (s, m) in pairs {
                    let old = z.get(&m).copied();
                    if (nx && old.is_some()) || (xx && old.is_none()) {
                        continue;
                    }
                    let new = match (incr, old) {
                        (true, Some(o)) => o + s,
                        _ => s,
                    };
                    if new.is_nan() {
                        return Err("ERR resulting score is not a number (NaN)".into());
                    }
                    if let Some(o) = old {
                        if (gt && new <= o) || (lt && new >= o) {
                            continue;
                        }
                    } else {
                        added += 1;
                    }
                    z.insert(m, new);
                    last = Some(new);
                }
                if incr {
                    Ok(last.map_or(Read::Nil, |s| self.score(s)))
                } else {
                    Ok(Read::Int(added))
                }
            }
            "zincrby" => {
                let by = float(a(2)?)?;
                let z = self.zset(a(1)?, true)?.unwrap();
                let new = z.get(a(3)?).copied().unwrap_or(0.0) + by;
                if new.is_nan() {
                    return Err("ERR resulting score is not a number (NaN)".into());
                }
                z.insert(a(3)?.to_vec(), new);
                Ok(self.score(new))
            }
            "zrem" => {
                let Some(z) = self.zset(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                Ok(Read::Int(
                    argv[2..].iter().filter(|m| z.remove(m).is_some()).count() as i64,
                ))
            }
            "zpopmin" | "zpopmax" => {
                let count = argv.get(2).map(|c| int(c)).transpose()?;
                let popped = self.zpop(a(1)?, name == "zpopmax", count.unwrap_or(1) as usize)?;
                Ok(self.scored(&popped, self.resp3 && count.is_some()))
            }
            "zmpop" => {
                let (keys, side, count) = mpop_args(argv, name)?;
                let max = side == "max";
                for k in keys {
                    self.zset(k, false)?;
                }
                for k in keys {
                    if self.keys.contains_key(k) {
                        let popped = self.zpop(k, max, count)?;
                        return Ok(Read::Array(vec![bulk(k), self.scored(&popped, true)]));
                    }
                }
                Ok(Read::Nil)
            }
            "zremrangebyrank" | "zremrangebyscore" => {
                let Some(z) = self.zset(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                let all = sorted(z.scores());
                let gone: Vec<Vec<u8>> = if name == "zremrangebyrank" {
                    match range(int(a(2)?)?, int(a(3)?)?, all.len()) {
                        None => vec![],
                        Some((s, e)) => all[s..=e].iter().map(|p| p.0.clone()).collect(),
                    }
                } else {
                    let (min, max) = (score_bound(a(2)?)?, score_bound(a(3)?)?);
                    all.into_iter()
                        .filter(|(_, s)| in_range(*s, min, max))
                        .map(|p| p.0)
                        .collect()
                };
                for m in &gone {
                    z.remove(m);
                }
                Ok(Read::Int(gone.len() as i64))
            }

            // Lists.
            "lpush" | "rpush" | "lpushx" | "rpushx" => {
                let x = name.ends_with('x');
                let Some(l) = self.list(a(1)?, !x)? else {
                    return Ok(Read::Int(0));
                };
                for e in &argv[2..] {
                    if name.starts_with('l') {
                        l.push_front(e.clone());
                    } else {
                        l.push_back(e.clone());
                    }
                }
                Ok(Read::Int(l.len() as i64))
            }
            "lpop" | "rpop" => {
                let count = argv.get(2).map(|c| int(c)).transpose()?;
                let popped = self.lpop(a(1)?, name == "lpop", count.unwrap_or(1) as usize)?;
                Ok(match (popped, count) {
                    (None, _) => Read::Nil,
                    (Some(p), Some(_)) => Read::Array(p.iter().map(|e| bulk(e)).collect()),
                    (Some(p), None) => p.first().map_or(Read::Nil, |e| bulk(e)),
                })
            }
            "lmove" | "rpoplpush" => {
                let (src, dst) = (a(1)?, a(2)?);
                let (from_left, to_left) = if name == "lmove" {
                    (lower(a(3)?) == "left", lower(a(4)?) == "left")
                } else {
                    (false, true)
                };
                self.check_list(src)?;
                if !self.keys.contains_key(src) {
                    return Ok(Read::Nil);
                }
                self.check_list(dst)?;
                let l = self.list(src, false)?.unwrap();
                let e = if from_left {
                    l.pop_front()
                } else {
                    l.pop_back()
                }
                .unwrap();
                let d = self.list(dst, true)?.unwrap();
                if to_left {
                    d.push_front(e.clone());
                } else {
                    d.push_back(e.clone());
                }
                Ok(bulk(&e))
            }
            "lmpop" => {
                let (keys, side, count) = mpop_args(argv, name)?;
                let left = side == "left";
                for k in keys {
                    self.check_list(k)?;
                }
                for k in keys {
                    if let Some(p) = self.lpop(k, left, count)? {
                        return Ok(Read::Array(vec![
                            bulk(k),
                            Read::Array(p.iter().map(|e| bulk(e)).collect()),
                        ]));
                    }
                }
                Ok(Read::Nil)
            }
            "lset" => {
                let i = int(a(2)?)?;
                let Some(l) = self.list(a(1)?, false)? else {
                    return Err("ERR no such key".into());
                };
                let i = if i < 0 { i + l.len() as i64 } else { i };
                match usize::try_from(i).ok().and_then(|i| l.get_mut(i)) {
                    Some(slot) => *slot = a(3)?.to_vec(),
                    None => return Err("ERR index out of range".into()),
                }
                ok()
            }
            "ltrim" => {
                let (s, e) = (int(a(2)?)?, int(a(3)?)?);
                let Some(l) = self.list(a(1)?, false)? else {
                    return ok();
                };
                match range(s, e, l.len()) {
                    None => l.clear(),
                    Some((s, e)) => {
                        l.truncate(e + 1);
                        l.drain(..s);
                    }
                }
                ok()
            }
            "linsert" => {
                let before = lower(a(2)?) == "before";
                let Some(l) = self.list(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                match l.iter().position(|e| e.as_slice() == argv[3].as_slice()) {
                    None => Ok(Read::Int(-1)),
                    Some(p) => {
                        l.insert(if before { p } else { p + 1 }, a(4)?.to_vec());
                        Ok(Read::Int(l.len() as i64))
                    }
                }
            }
            "lrem" => {
                let count = int(a(2)?)?;
                let v = a(3)?.to_vec();
                let Some(l) = self.list(a(1)?, false)? else {
                    return Ok(Read::Int(0));
                };
                let mut removed = 0i64;
                let limit = if count == 0 { i64::MAX } else { count.abs() };
                if count >= 0 {
                    let mut i = 0;
                    while i < l.len() && removed < limit {
                        if l[i] == v {
                            l.remove(i);
                            removed += 1;
                        } else {
                            i += 1;
                        }
                    }
                } else {
                    let mut i = l.len();
                    while i > 0 && removed < limit {
                        i -= 1;
                        if l[i] == v {
                            l.remove(i);
                            removed += 1;
                        }
                    }
                }
                Ok(Read::Int(removed))
            }
            _ => Err(format!("ERR unknown command '{name}'")),
        }
    }
}

/// `numkeys key... <where> [COUNT n]` (ZMPOP, LMPOP): the keys, `<where>` in lowercase, and
/// the count.
fn mpop_args<'a>(
    argv: &'a [Vec<u8>],
    name: &str,
) -> Result<(&'a [Vec<u8>], String, usize), String> {
    let a = |i: usize| arg(argv, i, name);
    let n = int(a(1)?)? as usize;
    let side = lower(a(2 + n)?);
    let count = if argv.len() > 3 + n {
        int(a(4 + n)?)? as usize
    } else {
        1
    };
    Ok((&argv[2..2 + n], side, count))
}
