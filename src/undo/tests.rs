//! End to end, without a server: random transactions run on the in-memory model the way the
//! executor runs them (plan, the compact keys made whole, reads, snapshots, command, entries),
//! then roll back through the undo log (raw, checkpointed as they go, and compacted at the
//! end) and must restore the keyspace exactly: every value that was in a compact encoding in
//! its very representation (`DUMP`-equal), the others with the same contents.

use super::entry::{Snapshot, UndoEntry};
use super::log::UndoLog;
use super::model::{self, show, Db, Hash, List, Obj, Rng, Set, Val, ZSet};
use super::recipe::{self, Read};

const NOW: i64 = 1_700_000_000_000;
const KEYS: [&str; 4] = ["a", "b", "c", "d"];
/// Short strings, integers (an intset holds them) and a string too long for a listpack.
const ELEMS: [&str; 7] = ["x", "y", "z", "w", "1", "7", "longer"];
const VALUES: [&str; 6] = ["1", "2", "10", "-3", "v", "hello"];
const SCORES: [&str; 9] = ["1", "2.5", "-1", "0", "inf", "-inf", "0.1", "3", "1e3"];

fn v(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

fn snapshot(db: &mut Db, k: &[u8]) -> Option<Snapshot> {
    match db.call(&[b"DUMP".to_vec(), k.to_vec()]) {
        Read::Bulk(payload) => {
            let expire_at_ms = match db.call(&[b"PEXPIRETIME".to_vec(), k.to_vec()]) {
                Read::Int(t) if t >= 0 => Some(t),
                _ => None,
            };
            Some(Snapshot {
                payload,
                expire_at_ms,
            })
        }
        _ => None,
    }
}

/// Runs one forward command the way the executor does, pushing its entries to `logs`.
fn record(db: &mut Db, logs: &mut [&mut UndoLog], argv: &[Vec<u8>], skip_covered: bool) -> Read {
    let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let plan = recipe::plan(&refs, &model::write_keys(argv), db.now);
    if skip_covered
        && plan.is_barrier_free()
        && !plan.keys().is_empty()
        && plan.keys().iter().all(|k| logs[0].covers(k))
    {
        return db.call(argv);
    }
    // As the executor does: keys in a compact encoding now are copied whole.
    let compact: Vec<&[u8]> = plan
        .element_keys()
        .into_iter()
        .filter(|k| !logs[0].covers(k) && !logs[0].has_elements(k))
        .filter(|k| {
            let enc = db.call(&[b"OBJECT".to_vec(), b"ENCODING".to_vec(), k.to_vec()]);
            matches!(enc, Read::Bulk(e) if e == b"listpack" || e == b"intset")
        })
        .collect();
    let plan = plan.with_whole(&compact);
    let reads: Vec<Read> = plan
        .reads()
        .iter()
        .map(|c| db.call(&c.iter().map(|a| a.to_vec()).collect::<Vec<_>>()))
        .collect();
    let wholes: Vec<(Vec<u8>, Option<Snapshot>)> = plan
        .whole_keys(&reads)
        .into_iter()
        .map(|k| (k.to_vec(), snapshot(db, k)))
        .collect();
    let reply = db.call(argv);
    if matches!(reply, Read::Error(_)) {
        return reply;
    }
    let entries = plan.entries(&reads, wholes, plan.needs_reply().then_some(&reply));
    for l in logs.iter_mut() {
        for e in &entries {
            l.push(e.clone());
        }
    }
    reply
}

fn rollback(db: &mut Db, log: &UndoLog) -> Result<(), String> {
    for c in log.compensations() {
        if let Read::Error(e) = db.call(&c) {
            return Err(format!("{} -> {}", show(&c), String::from_utf8_lossy(&e)));
        }
    }
    Ok(())
}

fn random_db(rng: &mut Rng) -> Db {
    let mut db = Db::new(NOW);
    db.resp3 = rng.chance(50);
    db.rng = rng.next() | 1;
    for k in KEYS {
        // Up to 6 elements: some collections outgrow the model's compact encodings.
        let n = 1 + rng.below(6);
        let mut elems: Vec<Vec<u8>> = (0..n)
            .map(|_| rng.pick(&ELEMS).as_bytes().to_vec())
            .collect();
        let val = match rng.below(7) {
            0 | 1 => continue,
            2 => Val::Str(rng.pick(&VALUES).as_bytes().to_vec()),
            3 => Val::Hash(Hash::of(
                elems
                    .drain(..)
                    .map(|f| (f, rng.pick(&VALUES).as_bytes().to_vec()))
                    .collect::<Vec<_>>(),
            )),
            4 => Val::Set(Set::of(elems.drain(..))),
            5 => Val::ZSet(ZSet::of(
                elems
                    .drain(..)
                    .map(|m| (m, rng.pick(&SCORES).parse::<f64>().unwrap()))
                    .collect::<Vec<_>>(),
            )),
            _ => Val::List(List::of(elems.drain(..))),
        };
        let exp = rng
            .chance(50)
            .then(|| NOW + 3_000 + rng.below(200_000) as i64);
        db.keys.insert(k.as_bytes().to_vec(), Obj { val, exp });
    }
    db
}

#[allow(clippy::too_many_lines)]
fn random_command(rng: &mut Rng, db: &Db) -> Vec<Vec<u8>> {
    let k = *rng.pick(&KEYS);
    // Mostly a command for the type the key holds, so that most of them succeed.
    let which = if rng.chance(75) {
        let (lo, hi) = match db.keys.get(k.as_bytes()).map(|o| &o.val) {
            None => (0, 59),
            Some(Val::Str(_)) => (0, 11),
            Some(Val::Hash(_)) => (12, 17),
            Some(Val::Set(_)) => (18, 23),
            Some(Val::ZSet(_)) => (24, 33),
            Some(Val::List(_)) => (34, 45),
        };
        lo + rng.below(hi - lo + 1)
    } else {
        rng.below(60)
    };
    let k2 = *rng.pick(&KEYS);
    let e = *rng.pick(&ELEMS);
    let e2 = *rng.pick(&ELEMS);
    let val = *rng.pick(&VALUES);
    let s = *rng.pick(&SCORES);
    let side = *rng.pick(&["LEFT", "RIGHT"]);
    let side2 = *rng.pick(&["LEFT", "RIGHT"]);
    let n = ["0", "1", "2", "3", "5"][rng.below(5)];
    let idx = ["0", "1", "-1", "2", "-2", "5", "-5"][rng.below(7)];
    let idx2 = ["0", "1", "-1", "2", "-2", "5", "-5", "-3"][rng.below(8)];
    let c: Vec<&str> = match which {
        0 => vec!["SET", k, val],
        1 => {
            let mut c = vec!["SET", k, val];
            c.push(*rng.pick(&["NX", "XX", "GET", "KEEPTTL"]));
            if rng.chance(50) {
                c.extend([
                    *rng.pick(&["PX", "PXAT"]),
                    *rng.pick(&["5000", "1700000009000"]),
                ]);
            }
            c
        }
        2 => vec!["SETNX", k, val],
        3 => vec!["GETSET", k, val],
        4 => vec!["GETDEL", k],
        5 => match rng.below(3) {
            0 => vec!["GETEX", k, "PERSIST"],
            1 => vec!["GETEX", k, "PX", "7000"],
            _ => vec!["GETEX", k],
        },
        6 => vec!["APPEND", k, val],
        7 => vec!["INCR", k],
        8 => vec!["INCRBY", k, val],
        9 => vec!["DECR", k],
        10 => vec!["MSET", k, val, k2, "2"],
        11 => vec!["MSETNX", k, val, k2, "3"],
        12 => vec!["HSET", k, e, val],
        13 => vec!["HSET", k, e, val, e2, "7", e, "8"],
        14 => vec!["HSETNX", k, e, val],
        15 => vec!["HDEL", k, e],
        16 => vec!["HDEL", k, e, e2, "x", "y"],
        17 => vec!["HINCRBY", k, e, "3"],
        18 => vec!["SADD", k, e],
        19 => vec!["SADD", k, e, e2, e],
        20 => vec!["SREM", k, e],
        21 => vec!["SREM", k, e, e2, "x", "y", "z", "w"],
        22 => vec!["SMOVE", k, k2, e],
        23 => {
            if rng.chance(50) {
                vec!["SPOP", k]
            } else {
                vec!["SPOP", k, n]
            }
        }
        24 => vec!["ZADD", k, s, e],
        25 => {
            let mut c = vec!["ZADD", k];
            let opts = ["NX", "XX", "GT", "LT", "CH"];
            for _ in 0..rng.below(3) {
                c.push(*rng.pick(&opts));
            }
            c.extend([s, e, *rng.pick(&SCORES), e2]);
            c
        }
        26 => vec!["ZADD", k, *rng.pick(&["INCR", "XX", "NX"]), "INCR", s, e],
        27 => vec!["ZINCRBY", k, s, e],
        28 => vec!["ZREM", k, e],
        29 => vec!["ZREM", k, e, e2, "x", "y"],
        30 => {
            let name = *rng.pick(&["ZPOPMIN", "ZPOPMAX"]);
            if rng.chance(50) {
                vec![name, k]
            } else {
                vec![name, k, n]
            }
        }
        31 => {
            let mut c = vec!["ZMPOP", "2", k, k2, *rng.pick(&["MIN", "MAX"])];
            if rng.chance(50) {
                c.extend(["COUNT", ["1", "2", "3"][rng.below(3)]]);
            }
            c
        }
        32 => vec!["ZREMRANGEBYRANK", k, idx, idx2],
        33 => vec![
            "ZREMRANGEBYSCORE",
            k,
            *rng.pick(&["-inf", "0", "(0", "1", "(2.5"]),
            *rng.pick(&["+inf", "inf", "1", "(3", "2.5"]),
        ],
        34 => vec![*rng.pick(&["LPUSH", "RPUSH"]), k, e],
        35 => vec![*rng.pick(&["LPUSH", "RPUSH"]), k, e, e2, val],
        36 => vec![*rng.pick(&["LPUSHX", "RPUSHX"]), k, e, e2],
        37 => {
            let name = *rng.pick(&["LPOP", "RPOP"]);
            if rng.chance(50) {
                vec![name, k]
            } else {
                vec![name, k, n]
            }
        }
        38 => vec!["LMOVE", k, k2, side, side2],
        39 => vec!["LMOVE", k, k, side, side2],
        40 => vec!["RPOPLPUSH", k, k2],
        41 => {
            let mut c = vec!["LMPOP", "2", k, k2, side];
            if rng.chance(50) {
                c.extend(["COUNT", ["1", "2", "3"][rng.below(3)]]);
            }
            c
        }
        42 => vec!["LSET", k, idx, val],
        43 => vec!["LTRIM", k, idx, idx2],
        44 => vec!["LINSERT", k, *rng.pick(&["BEFORE", "AFTER"]), e, val],
        45 => vec!["LREM", k, *rng.pick(&["0", "1", "-1", "2"]), e],
        46 => vec!["EXPIRE", k, *rng.pick(&["-5", "0", "1", "3", "100"])],
        47 => vec![
            "PEXPIRE",
            k,
            *rng.pick(&["-1", "0", "500", "1500", "2500", "100000"]),
        ],
        48 => vec![
            "EXPIREAT",
            k,
            *rng.pick(&[
                "1699999999",
                "1700000000",
                "1700000001",
                "1700000003",
                "1700001000",
            ]),
        ],
        49 => {
            let mut c = vec![
                "PEXPIREAT",
                k,
                *rng.pick(&[
                    "1699999999990",
                    "1700000000000",
                    "1700000000001",
                    "1700000001999",
                    "1700000002000",
                    "1700000002001",
                    "1700000050000",
                ]),
            ];
            if rng.chance(30) {
                c.push(*rng.pick(&["NX", "XX", "GT", "LT"]));
            }
            c
        }
        50 => vec!["EXPIRE", k, "50", *rng.pick(&["NX", "XX", "GT", "LT"])],
        51 => vec!["PERSIST", k],
        52 => vec!["DEL", k],
        53 => vec!["DEL", k, k2],
        54 => vec!["UNLINK", k],
        55 => vec!["RENAME", k, k2],
        56 => vec!["RENAMENX", k, k2],
        57 => {
            if rng.chance(50) {
                vec!["COPY", k, k2]
            } else {
                vec!["COPY", k, k2, "REPLACE"]
            }
        }
        58 => vec!["INCRBY", k, "5"],
        _ => vec!["HSET", k, e, "1"],
    };
    v(&c)
}

/// Asserts that `after` is what rolling back must give back for `before` (see
/// `Db::restores`).
#[track_caller]
fn restored(after: &Db, before: &Db, what: impl FnOnce() -> String) {
    if let Err(e) = after.restores(before) {
        panic!("not restored: {e}\n{}", what());
    }
}

/// At `now`, the keyspace `db` had, with the keys expired by then gone.
fn at(db: &Db, now: i64) -> Db {
    let mut d = db.clone();
    d.now = now;
    d.purge();
    d
}

#[test]
fn random_transactions_roll_back_exactly() {
    let mut stats = (0usize, 0usize, 0usize);
    let (mut late, mut ok, mut failed) = (0, 0, 0);
    for seed in 0..4000u64 {
        let mut rng = Rng::new(seed + 1);
        let db0 = random_db(&mut rng);
        let mut db = db0.clone();
        let mut raw = UndoLog::new();
        let mut ckpt = UndoLog::new();
        let every = *rng.pick(&[0u64, 1, 2, 5, 16]);
        let skip_covered = rng.chance(50);
        let len = 1 + rng.below(30);
        let mut cmds = Vec::new();
        for _ in 0..len {
            let c = random_command(&mut rng, &db);
            let reply = record(&mut db, &mut [&mut raw, &mut ckpt], &c, skip_covered);
            let reply = match reply {
                Read::Error(e) => {
                    failed += 1;
                    format!("(error) {}", String::from_utf8_lossy(&e))
                }
                other => {
                    ok += 1;
                    format!("{other:?}")
                }
            };
            cmds.push(format!("{} => {reply}", show(&c)));
            if every > 0 && ckpt.since_compaction() >= every {
                ckpt.compact();
            }
            for k in KEYS {
                assert_eq!(
                    raw.covers(k.as_bytes()),
                    ckpt.covers(k.as_bytes()),
                    "seed {seed}"
                );
                assert_eq!(
                    raw.has_elements(k.as_bytes()),
                    ckpt.has_elements(k.as_bytes()),
                    "seed {seed}"
                );
            }
        }
        let ctx = || {
            format!(
                "seed {seed} (skip covered: {skip_covered}, checkpoint every {every})\n{}\nraw compensations:\n{}",
                cmds.join("\n"),
                raw.compensations()
                    .iter()
                    .map(|c| show(c))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };

        let mut a = db.clone();
        rollback(&mut a, &raw).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        restored(&a, &db0, || format!("raw rollback\n{}", ctx()));

        let mut b = db.clone();
        rollback(&mut b, &ckpt).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        restored(&b, &db0, || format!("checkpointed rollback\n{}", ctx()));

        let mut full = raw.clone();
        let removed = full.compact();
        assert_eq!(full.len() + removed, raw.len());
        assert_eq!(full.compact(), 0, "compaction is idempotent");
        assert!(full.weight() <= raw.weight());
        let mut c = db.clone();
        rollback(&mut c, &full).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
        restored(&c, &db0, || {
            format!(
                "compacted rollback\n{}\ncompacted: {:#?}",
                ctx(),
                full.entries()
            )
        });

        // Much later (a retained transaction), if none of the transaction's results expired
        // meanwhile (that is a conflict): keys whose original deadline passed are gone.
        let later = NOW + *rng.pick(&[1_000i64, 5_000, 50_000, 150_000, 10_000_000]);
        let mut d = at(&db, later);
        if d == db {
            late += 1;
            rollback(&mut d, &full).unwrap_or_else(|e| panic!("late: {e}\n{}", ctx()));
            restored(&d, &at(&db0, later), || {
                format!(
                    "late compacted rollback at {later}\n{}\ncompacted: {:#?}",
                    ctx(),
                    full.entries()
                )
            });
        }

        for l in [&raw, &ckpt, &full] {
            assert_eq!(UndoLog::decode(&l.encode()).as_ref(), Ok(l));
        }
        stats.0 += raw.len();
        stats.1 += full.len();
        stats.2 += raw
            .entries()
            .iter()
            .filter(|e| matches!(e, UndoEntry::Whole { .. }))
            .count();
    }
    eprintln!(
        "commands ok {ok}, failed {failed}; entries {}, after compaction {}, whole {}; \
         late rollbacks checked {late}",
        stats.0, stats.1, stats.2
    );
    assert!(ok > failed * 2, "{ok} {failed}");
    assert!(late > 1000, "{late}");
    // Most entries are element-level, even with DEL, COPY, LINSERT... in the mix.
    assert!(stats.2 * 2 < stats.0, "{stats:?}");
    assert!(stats.1 < stats.0, "{stats:?}");
}

#[test]
fn ten_thousand_incrs_over_ten_keys_leave_ten_entries() {
    for skip_covered in [false, true] {
        let mut db = Db::new(NOW);
        for i in 0..5 {
            db.keys.insert(
                format!("k{i}").into_bytes(),
                Obj {
                    val: Val::Str(b"100".to_vec()),
                    exp: (i % 2 == 0).then_some(NOW + 60_000),
                },
            );
        }
        let db0 = db.clone();
        let mut log = UndoLog::new();
        let mut peak = 0;
        for i in 0..10_000 {
            let c = v(&["INCR", &format!("k{}", i % 10)]);
            assert!(matches!(
                record(&mut db, &mut [&mut log], &c, skip_covered),
                Read::Int(_)
            ));
            if log.since_compaction() >= 1000 {
                log.compact();
            }
            peak = peak.max(log.len());
        }
        log.compact();
        assert!(log.len() <= 10, "{}", log.len());
        // The first INCR of each key logs its full value; the rest are covered.
        assert_eq!(peak, 10);
        assert_eq!(log.pushed(), 10);
        let mut back = db.clone();
        rollback(&mut back, &log).unwrap();
        restored(&back, &db0, String::new);
    }
}

#[test]
fn lmove_within_one_list_rolls_back() {
    for (from, to) in [
        ("LEFT", "LEFT"),
        ("LEFT", "RIGHT"),
        ("RIGHT", "LEFT"),
        ("RIGHT", "RIGHT"),
    ] {
        for init in [vec!["a"], vec!["a", "b", "c"]] {
            let mut db = Db::new(NOW);
            db.keys.insert(
                b"l".to_vec(),
                Obj {
                    val: Val::List(List::of(init.iter().map(|e| e.as_bytes().to_vec()))),
                    exp: Some(NOW + 10_000),
                },
            );
            let db0 = db.clone();
            let mut log = UndoLog::new();
            for _ in 0..3 {
                record(
                    &mut db,
                    &mut [&mut log],
                    &v(&["LMOVE", "l", "l", from, to]),
                    false,
                );
            }
            record(
                &mut db,
                &mut [&mut log],
                &v(&["RPOPLPUSH", "l", "l"]),
                false,
            );
            let mut back = db.clone();
            rollback(&mut back, &log).unwrap();
            restored(&back, &db0, || format!("{from} {to} {init:?}"));
            log.compact();
            let mut back = db.clone();
            rollback(&mut back, &log).unwrap();
            restored(&back, &db0, || format!("{from} {to} {init:?} compacted"));
        }
    }
}
