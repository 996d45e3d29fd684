//! Rollback restores representation, not only contents: for a key held in a compact encoding
//! (hash / set / sorted-set listpack, set intset, a small list, strings), `DUMP` after a
//! rolled-back transaction equals `DUMP` before, byte for byte, and so do `OBJECT ENCODING` and
//! `PEXPIRETIME`. The keys in a large encoding that some cases also touch (a hashtable, a
//! quicklist of many nodes) are compared by contents, type, encoding and expiry: their
//! internal order may differ (see the README, "How rollback works").
//!
//! Strings are DUMP-exact too, and keep their encoding except one: an `int` (or short `raw`)
//! string comes back `embstr` (see `string_encoding_may_change`).
//!
//! Each case is some setup, the keys it checks and the writes of a transaction that then fails
//! (`INCR` of a string holding "x"). Every case also commits the same writes afterwards and
//! checks that they changed one of its keys, so a case cannot pass because its writes did
//! nothing. Each test runs all its cases and reports every failing one, not only the first.
//!
//! The encodings differ by server: small sets of strings are `listpack` on Redis >= 7.2 and
//! Valkey but `hashtable` on Redis 7.0; small lists are `listpack` on Redis >= 7.2 and Valkey
//! but a `quicklist` of one node on Redis 7.0. Each case asserts the encoding it meant to cover.

mod common;

use common::{array_items, bulk_body, esc, run, show, txu, RawConn, Server};
use std::collections::BTreeMap;

/// The failing last command of every transaction (`INCR` of a string holding "x").
const FAIL_KEY: &str = "exact:not-a-number";

/// One rollback case.
struct Case {
    name: String,
    /// Commands run directly (not through txu) before the transaction.
    setup: Vec<Vec<String>>,
    /// The keys compared before and after.
    keys: Vec<String>,
    /// The transaction's writes (the failing `INCR` is added after them).
    writes: Vec<Vec<String>>,
    /// `(key, encodings)`: the setup must leave `key` in one of these encodings (what the case
    /// means to cover); checked before anything runs.
    expect_encoding: Vec<(String, Vec<&'static str>)>,
    /// Keys in a large encoding: compared by contents, type, encoding and expiry, not `DUMP`.
    large: Vec<String>,
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn case(name: &str, setup: &[&str], keys: &[&str], writes: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        setup: setup.iter().map(|l| words(l)).collect(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        writes: writes.iter().map(|l| words(l)).collect(),
        expect_encoding: Vec::new(),
        large: Vec::new(),
    }
}

impl Case {
    /// The setup leaves `key` in one of `encodings`.
    fn encoded(mut self, key: &str, encodings: &[&'static str]) -> Case {
        self.expect_encoding
            .push((key.to_string(), encodings.to_vec()));
        self
    }

    /// `key` is in a large encoding (`encodings`): its `DUMP` is not compared.
    fn large(mut self, key: &str, encodings: &[&'static str]) -> Case {
        self.large.push(key.to_string());
        self.encoded(key, encodings)
    }

    /// One more setup command with arguments of any text (values with spaces, long ones).
    fn setup_args(mut self, args: Vec<String>) -> Case {
        self.setup.push(args);
        self
    }

    /// One more write with arguments of any text.
    fn write_args(mut self, args: Vec<String>) -> Case {
        self.writes.push(args);
        self
    }
}

// ----- what is compared ----------------------------------------------------------------------

/// What a key looks like: its `DUMP` (`None`: absent), `OBJECT ENCODING`, `PEXPIRETIME`, and its
/// contents in a canonical form (sets and hashes sorted), for the messages and for the keys
/// whose encoding is not compact.
#[derive(Debug, Clone, PartialEq)]
struct KeyRep {
    dump: Option<Vec<u8>>,
    encoding: Option<String>,
    pexpiretime: i64,
    contents: Vec<String>,
}

/// Encodings whose `DUMP` is byte-exact after a rollback. `quicklist` is here because the
/// lists of these tests are small: on Redis 7.0 every list is a quicklist, and a small one has
/// one node.
const COMPACT: &[&str] = &[
    "listpack",
    "ziplist",
    "intset",
    "quicklist",
    "int",
    "embstr",
    "raw",
];

fn cmd(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    run(c, args)
}

fn integer(r: &[u8], what: &str) -> i64 {
    let s = show(r);
    s.strip_prefix(':')
        .and_then(|x| x.strip_suffix("\r\n"))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{what}: expected an integer, got {}", esc(r)))
}

fn simple_or_bulk(r: &[u8]) -> Option<String> {
    if let Some(b) = bulk_body(r) {
        return Some(show(b));
    }
    show(r)
        .strip_prefix('+')
        .and_then(|x| x.strip_suffix("\r\n"))
        .map(str::to_string)
}

fn strings(r: &[u8], what: &str) -> Vec<String> {
    array_items(r)
        .unwrap_or_else(|| panic!("{what}: expected an array, got {}", esc(r)))
        .into_iter()
        .map(|e| {
            bulk_body(e)
                .map(esc)
                .unwrap_or_else(|| panic!("{what}: expected bulk strings, got {}", esc(e)))
        })
        .collect()
}

fn rep(c: &mut RawConn, key: &str) -> KeyRep {
    let dump = bulk_body(&cmd(c, &["DUMP", key])).map(<[u8]>::to_vec);
    let encoding = simple_or_bulk(&cmd(c, &["OBJECT", "ENCODING", key]));
    let pexpiretime = integer(&cmd(c, &["PEXPIRETIME", key]), "PEXPIRETIME");
    let ty = simple_or_bulk(&cmd(c, &["TYPE", key])).unwrap_or_default();
    let (mut contents, sort) = match ty.as_str() {
        "none" => (Vec::new(), false),
        "string" => (
            vec![esc(bulk_body(&cmd(c, &["GET", key])).unwrap_or_default())],
            false,
        ),
        "list" => (
            strings(&cmd(c, &["LRANGE", key, "0", "-1"]), "LRANGE"),
            false,
        ),
        "set" => (strings(&cmd(c, &["SMEMBERS", key]), "SMEMBERS"), true),
        "zset" => (
            strings(&cmd(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]), "ZRANGE"),
            false,
        ),
        "hash" => {
            let flat = strings(&cmd(c, &["HGETALL", key]), "HGETALL");
            let pairs: Vec<String> = flat
                .chunks(2)
                .map(|p| format!("{}={}", p[0], p.get(1).map_or("", String::as_str)))
                .collect();
            (pairs, true)
        }
        other => panic!("{key}: unexpected type {other}"),
    };
    if sort {
        contents.sort();
    }
    contents.insert(0, ty);
    KeyRep {
        dump,
        encoding,
        pexpiretime,
        contents,
    }
}

fn reps(c: &mut RawConn, keys: &[String]) -> BTreeMap<String, KeyRep> {
    keys.iter().map(|k| (k.clone(), rep(c, k))).collect()
}

/// The one representation a rollback does not put back: the encoding of a string whose old
/// value is written back with `SET` through the module call API. The server then keeps the
/// value as the module passed it (it holds a reference of its own), so an `int` string comes
/// back `embstr`, and so does a short `raw` one (which `APPEND` makes) — the same value with
/// the same `DUMP`: DUMP stores strings by value, not by encoding.
fn string_encoding_may_change(before: &KeyRep, after: &KeyRep) -> bool {
    let is_string = before.contents.first().map(String::as_str) == Some("string");
    let short = before.contents.get(1).is_some_and(|v| v.len() <= 44);
    is_string
        && short
        && matches!(before.encoding.as_deref(), Some("int" | "raw"))
        && after.encoding.as_deref() == Some("embstr")
}

/// What is wrong with `after` for a key that was `before`, if anything; `large`: a key in a
/// large encoding, whose `DUMP` may differ.
fn difference(before: &KeyRep, after: &KeyRep, large: bool) -> Option<String> {
    let compact = !large
        && before
            .encoding
            .as_deref()
            .is_none_or(|e| COMPACT.contains(&e));
    let mut wrong = Vec::new();
    if compact && before.dump != after.dump {
        wrong.push(format!(
            "DUMP differs:\n      before {}\n      after  {}",
            before.dump.as_deref().map_or("(nil)".into(), esc),
            after.dump.as_deref().map_or("(nil)".into(), esc)
        ));
    }
    if before.encoding != after.encoding && !string_encoding_may_change(before, after) {
        wrong.push(format!(
            "OBJECT ENCODING {:?} -> {:?}",
            before.encoding, after.encoding
        ));
    }
    if before.pexpiretime != after.pexpiretime {
        wrong.push(format!(
            "PEXPIRETIME {} -> {}",
            before.pexpiretime, after.pexpiretime
        ));
    }
    if before.contents != after.contents {
        wrong.push(format!(
            "contents {:?} -> {:?}",
            before.contents, after.contents
        ));
    }
    (!wrong.is_empty()).then(|| wrong.join("\n    "))
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs every case on a fresh keyspace of `s`; returns one message per failing case.
fn run_cases(s: &Server, cases: Vec<Case>) -> Vec<String> {
    let mut c = s.raw();
    let mut failures = Vec::new();
    for case in cases {
        let name = &case.name;
        assert_eq!(
            show(&cmd(&mut c, &["FLUSHALL"])),
            "+OK\r\n",
            "{name}: FLUSHALL"
        );
        for args in &case.setup {
            let r = cmd(&mut c, &as_strs(args));
            assert!(
                r.first() != Some(&b'-'),
                "{name}: setup {:?}: {}",
                args.first(),
                esc(&r)
            );
        }
        assert_eq!(show(&cmd(&mut c, &["SET", FAIL_KEY, "x"])), "+OK\r\n");
        for (key, encodings) in &case.expect_encoding {
            let enc = simple_or_bulk(&cmd(&mut c, &["OBJECT", "ENCODING", key]));
            assert!(
                enc.as_deref().is_some_and(|e| encodings.contains(&e)),
                "{name}: the setup should leave {key} in {encodings:?}, it is {enc:?}"
            );
        }
        let before = reps(&mut c, &case.keys);

        let mut lines: Vec<Vec<String>> = case.writes.clone();
        lines.push(vec!["INCR".into(), FAIL_KEY.into()]);
        let reply = common::exec_tx(&mut c, &[], &lines).1;
        let head = format!("-ROLLBACK command {} (INCR) failed: ", lines.len());
        assert!(
            show(&reply).starts_with(&head),
            "{name}: TXU.EXEC should fail at the INCR and roll back, got {}",
            esc(&reply)
        );
        let after = reps(&mut c, &case.keys);
        let mut wrong: Vec<String> = case
            .keys
            .iter()
            .filter_map(|k| {
                difference(&before[k], &after[k], case.large.contains(k))
                    .map(|d| format!("  {k} ({:?}): {d}", before[k].encoding))
            })
            .collect();

        // The same writes, committed, change something: the case is not vacuous.
        let committed = common::exec_tx(&mut c, &[], &case.writes).1;
        assert!(
            committed.first() == Some(&b'*'),
            "{name}: the writes should commit, got {}",
            esc(&committed)
        );
        if reps(&mut c, &case.keys) == before {
            wrong.push("  the writes, committed, change none of the keys".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{name}:\n{}", wrong.join("\n")));
        }
    }
    failures
}

#[track_caller]
fn check(s: &Server, cases: Vec<Case>) {
    let n = cases.len();
    let failures = run_cases(s, cases);
    let v = s.version();
    assert!(
        failures.is_empty(),
        "{} of {n} cases not exact on {:?} {}.{}.{}:\n{}",
        failures.len(),
        v.flavor,
        v.major,
        v.minor,
        v.patch,
        failures.join("\n")
    );
}

/// A numeric server config (`CONFIG GET <name>`).
fn config(s: &Server, name: &str) -> usize {
    let r = cmd(&mut s.raw(), &["CONFIG", "GET", name]);
    let items = array_items(&r).unwrap_or_else(|| panic!("CONFIG GET {name}: {}", esc(&r)));
    items
        .get(1)
        .and_then(|v| bulk_body(v))
        .and_then(|v| show(v).parse().ok())
        .unwrap_or_else(|| panic!("CONFIG GET {name}: {}", esc(&r)))
}

/// `HSET <key> f0 0 f1 1 ...` with `n` fields.
fn hset_n(key: &str, n: usize) -> Vec<String> {
    let mut a = vec!["HSET".to_string(), key.to_string()];
    for i in 0..n {
        a.push(format!("f{i}"));
        a.push(i.to_string());
    }
    a
}

/// `<cmd> <key> <members...>`.
fn with_members(cmd: &str, key: &str, members: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut a = vec![cmd.to_string(), key.to_string()];
    a.extend(members);
    a
}

// ----- hashes --------------------------------------------------------------------------------

#[test]
fn small_hashes_roll_back_byte_exact() {
    let s = Server::start();
    let h = "HSET h a 1 b 2 c 3 d hello e -7";
    let long = "v".repeat(100);
    let lp = |c: Case| c.encoded("h", &["listpack"]);
    let max = config(&s, "hash-max-listpack-entries");
    let cases = vec![
        lp(case("HDEL first field", &[h], &["h"], &["HDEL h a"])),
        lp(case("HDEL two fields", &[h], &["h"], &["HDEL h b d"])),
        lp(case("HSET existing field", &[h], &["h"], &["HSET h b 20"])),
        lp(case("HSET new field", &[h], &["h"], &["HSET h z 26"])),
        lp(case(
            "HSET existing and new",
            &[h],
            &["h"],
            &["HSET h a x z 26 c 33"],
        )),
        lp(case("HMSET", &[h], &["h"], &["HMSET h a 100 y 25"])),
        lp(case("HSETNX new field", &[h], &["h"], &["HSETNX h z 1"])),
        lp(case("HINCRBY", &[h], &["h"], &["HINCRBY h a 5"])),
        lp(case(
            "HINCRBYFLOAT",
            &[h],
            &["h"],
            &["HINCRBYFLOAT h b 1.5"],
        )),
        lp(case(
            "HDEL then HSET the field back",
            &[h],
            &["h"],
            &["HDEL h a", "HSET h a 1"],
        )),
        lp(case(
            "HDEL every field",
            &[h],
            &["h"],
            &["HDEL h a b c d e"],
        )),
        lp(case("DEL", &[h], &["h"], &["DEL h"])),
        lp(case(
            "HDEL with a TTL",
            &[h, "PEXPIRE h 5000000"],
            &["h"],
            &["HDEL h c"],
        )),
        lp(case(
            "several writes",
            &[h],
            &["h"],
            &["HDEL h b", "HSET h q 1", "HINCRBY h e 3", "HDEL h a"],
        )),
        // Writes that keep the listpack a listpack go element by element; a later write that
        // could reorder or convert it copies it whole then.
        lp(case(
            "HSET new fields, then HDEL one of them and an old one",
            &[h],
            &["h"],
            &[
                "HSET h q 1 r 2",
                "HINCRBY h a 4",
                "HDEL h q a",
                "HSET h a 1",
            ],
        )),
        lp(case(
            "HSET, then a long value converts",
            &[h],
            &["h"],
            &["HSET h q 1", "HSETNX h r 2"],
        ))
        .write_args(vec!["HSET".into(), "h".into(), "q".into(), long.clone()]),
        lp(case("HSET a long value converts", &[h], &["h"], &[])).write_args(vec![
            "HSET".into(),
            "h".into(),
            "b".into(),
            long.clone(),
        ]),
        case(
            "HSET past hash-max-listpack-entries converts",
            &[],
            &["h"],
            &["HSET h new 1"],
        )
        .setup_args(hset_n("h", max))
        .encoded("h", &["listpack"]),
        case(
            "HSET on a big hash",
            &[],
            &["h"],
            &["HDEL h f3", "HSET h f3 x"],
        )
        .setup_args(hset_n("h", max + 100))
        .encoded("h", &["hashtable"]),
    ];
    check(&s, cases);
}

// ----- sets ----------------------------------------------------------------------------------

#[test]
fn small_sets_roll_back_byte_exact() {
    let s = Server::start();
    let si = "SADD si 1 2 3 5 8 13 -4";
    let dst = "SADD sd 100 200";
    let is = |c: Case| c.encoded("si", &["intset"]);
    let ints = (0..config(&s, "set-max-intset-entries")).map(|i| i.to_string());
    let cases = vec![
        is(case("SREM", &[si], &["si"], &["SREM si 3"])),
        is(case("SADD int", &[si], &["si"], &["SADD si 4 21"])),
        is(case("SADD string converts", &[si], &["si"], &["SADD si x"])),
        is(case(
            "SADD long int converts",
            &[si],
            &["si"],
            &["SADD si 123456789012345678901234"],
        )),
        is(case("SPOP", &[si], &["si"], &["SPOP si"])),
        is(case("SPOP count", &[si], &["si"], &["SPOP si 3"])),
        is(case(
            "SMOVE out",
            &[si, dst],
            &["si", "sd"],
            &["SMOVE si sd 5"],
        )),
        is(case(
            "SMOVE in",
            &[si, dst],
            &["si", "sd"],
            &["SMOVE sd si 100"],
        )),
        is(case(
            "SREM every member",
            &[si],
            &["si"],
            &["SREM si 1 2 3 5 8 13 -4"],
        )),
        is(case("DEL", &[si], &["si"], &["DEL si"])),
        is(case(
            "SREM with a TTL",
            &[si, "PEXPIRE si 5000000"],
            &["si"],
            &["SREM si 1"],
        )),
        case(
            "SADD past set-max-intset-entries converts",
            &[],
            &["si"],
            &["SADD si 9999"],
        )
        .setup_args(with_members("SADD", "si", ints))
        .encoded("si", &["intset"]),
    ];
    check(&s, cases);
}

#[test]
fn small_sets_of_strings_roll_back_byte_exact() {
    let s = Server::start();
    // Redis >= 7.2 and Valkey keep small sets of strings in a listpack; Redis 7.0 in a
    // hashtable (its contents come back, not necessarily its order).
    let enc: &[&str] = if s.version().at_least(7, 2) {
        &["listpack"]
    } else {
        &["hashtable"]
    };
    let ss = "SADD ss a b c d e";
    let big: Vec<String> = (0..config(&s, "set-max-intset-entries") + 10)
        .map(|i| format!("b{i}"))
        .collect();
    let dst = "SADD sd p q";
    let lp = |c: Case| c.encoded("ss", enc);
    let long = "m".repeat(100);
    let members: Vec<String> = if s.version().at_least(7, 2) {
        (0..config(&s, "set-max-listpack-entries"))
            .map(|i| format!("m{i}"))
            .collect()
    } else {
        vec!["a".into()]
    };
    let cases = vec![
        lp(case("SREM first member", &[ss], &["ss"], &["SREM ss a"])),
        lp(case("SREM two", &[ss], &["ss"], &["SREM ss b d"])),
        lp(case("SADD", &[ss], &["ss"], &["SADD ss f"])),
        lp(case("SADD int", &[ss], &["ss"], &["SADD ss 7"])),
        lp(case("SPOP", &[ss], &["ss"], &["SPOP ss"])),
        lp(case("SPOP count", &[ss], &["ss"], &["SPOP ss 2"])),
        lp(case(
            "SMOVE out",
            &[ss, dst],
            &["ss", "sd"],
            &["SMOVE ss sd a"],
        )),
        lp(case(
            "SMOVE in",
            &[ss, dst],
            &["ss", "sd"],
            &["SMOVE sd ss p"],
        )),
        // The last SREM makes the committed writes change the set for sure: on Redis 7.0 a
        // member removed and added back may land where it was in the hashtable (its order
        // depends on the server's random hash seed).
        lp(case(
            "SREM then SADD back",
            &[ss],
            &["ss"],
            &["SREM ss a", "SADD ss a", "SREM ss b"],
        )),
        lp(case(
            "SREM every member",
            &[ss],
            &["ss"],
            &["SREM ss a b c d e"],
        )),
        lp(case("DEL", &[ss], &["ss"], &["DEL ss"])),
        lp(case("SADD a long member converts", &[ss], &["ss"], &[])).write_args(vec![
            "SADD".into(),
            "ss".into(),
            long,
        ]),
        case(
            "SADD past set-max-listpack-entries converts",
            &[],
            &["ss"],
            &["SADD ss zz"],
        )
        .setup_args(with_members("SADD", "ss", members))
        .encoded("ss", enc),
        // One key small, the other big: the small one goes whole, the big one element-level.
        lp(case(
            "SMOVE into a big set",
            &[ss],
            &["ss", "big"],
            &["SMOVE ss big a"],
        ))
        .setup_args(with_members("SADD", "big", big.clone()))
        .large("big", &["hashtable"]),
        lp(case(
            "SMOVE out of a big set",
            &[ss],
            &["ss", "big"],
            &["SMOVE big ss b7"],
        ))
        .setup_args(with_members("SADD", "big", big))
        .large("big", &["hashtable"]),
    ];
    check(&s, cases);
}

// ----- sorted sets ---------------------------------------------------------------------------

#[test]
fn small_sorted_sets_roll_back_byte_exact() {
    let s = Server::start();
    let z = "ZADD z 1 a 2 b 3 c 4 d 0.1 e -2.5 f 1e20 g";
    let lp = |c: Case| c.encoded("z", &["listpack"]);
    let long = "m".repeat(100);
    let members: Vec<String> = (0..config(&s, "zset-max-listpack-entries"))
        .flat_map(|i| [i.to_string(), format!("m{i}")])
        .collect();
    let cases = vec![
        lp(case("ZADD existing member", &[z], &["z"], &["ZADD z 5 a"])),
        lp(case("ZADD new member", &[z], &["z"], &["ZADD z 1.5 n"])),
        lp(case(
            "ZADD same score, other member",
            &[z],
            &["z"],
            &["ZADD z 2 bb"],
        )),
        lp(case("ZADD INCR", &[z], &["z"], &["ZADD z INCR 0.3 e"])),
        lp(case("ZREM", &[z], &["z"], &["ZREM z b"])),
        lp(case("ZINCRBY", &[z], &["z"], &["ZINCRBY z 10 a"])),
        lp(case("ZPOPMIN", &[z], &["z"], &["ZPOPMIN z"])),
        lp(case("ZPOPMAX count", &[z], &["z"], &["ZPOPMAX z 2"])),
        lp(case(
            "ZREMRANGEBYRANK",
            &[z],
            &["z"],
            &["ZREMRANGEBYRANK z 0 1"],
        )),
        lp(case(
            "ZREMRANGEBYSCORE",
            &[z],
            &["z"],
            &["ZREMRANGEBYSCORE z 1 3"],
        )),
        lp(case(
            "ZREM then ZADD back",
            &[z],
            &["z"],
            &["ZREM z c", "ZADD z 3 c", "ZREM z d"],
        )),
        lp(case(
            "ZREM every member",
            &[z],
            &["z"],
            &["ZREM z a b c d e f g"],
        )),
        lp(case("DEL", &[z], &["z"], &["DEL z"])),
        lp(case(
            "ZADD with a TTL",
            &[z, "PEXPIRE z 5000000"],
            &["z"],
            &["ZADD z 9 a"],
        )),
        lp(case(
            "ZADD and ZINCRBY, then ZREM",
            &[z],
            &["z"],
            &[
                "ZADD z 7 n 0 a",
                "ZINCRBY z 2.5 b",
                "ZREM z n c",
                "ZADD z 1 c",
            ],
        )),
        lp(case(
            "ZADD the same member twice",
            &[z],
            &["z"],
            &["ZADD z 8 n 9 n", "GEOADD z 13.361389 38.115556 palermo"],
        )),
        lp(case("ZADD a long member converts", &[z], &["z"], &[])).write_args(vec![
            "ZADD".into(),
            "z".into(),
            "1".into(),
            long.clone(),
        ]),
        lp(case(
            "ZADD, then a long member converts",
            &[z],
            &["z"],
            &["ZADD z 1 n"],
        ))
        .write_args(vec!["ZADD".into(), "z".into(), "1".into(), long]),
        case(
            "ZADD past zset-max-listpack-entries converts",
            &[],
            &["z"],
            &["ZADD z 500 zz"],
        )
        .setup_args(with_members("ZADD", "z", members))
        .encoded("z", &["listpack"]),
    ];
    check(&s, cases);
}

// ----- lists ---------------------------------------------------------------------------------

#[test]
fn small_lists_roll_back_byte_exact() {
    let s = Server::start();
    // A listpack on Redis >= 7.2 and Valkey, a quicklist of one node on Redis 7.0.
    let enc: &[&str] = &["listpack", "quicklist"];
    let l = "RPUSH l a b c d e 1 2 300000";
    let l2 = "RPUSH l2 p q";
    let lp = |c: Case| c.encoded("l", enc);
    let big_elem = "x".repeat(9000);
    let big: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
    let cases = vec![
        lp(case("LPUSH", &[l], &["l"], &["LPUSH l x"])),
        lp(case("RPUSH two", &[l], &["l"], &["RPUSH l y z"])),
        lp(case("LPOP", &[l], &["l"], &["LPOP l"])),
        lp(case("RPOP count", &[l], &["l"], &["RPOP l 2"])),
        lp(case("LSET", &[l], &["l"], &["LSET l 2 zz"])),
        lp(case("LSET an int", &[l], &["l"], &["LSET l 6 77"])),
        lp(case("LREM", &[l], &["l"], &["LREM l 0 b"])),
        lp(case("LINSERT", &[l], &["l"], &["LINSERT l BEFORE c q"])),
        lp(case("LTRIM", &[l], &["l"], &["LTRIM l 1 -2"])),
        lp(case(
            "LMOVE",
            &[l, l2],
            &["l", "l2"],
            &["LMOVE l l2 LEFT RIGHT"],
        )),
        lp(case(
            "RPOPLPUSH same list",
            &[l],
            &["l"],
            &["RPOPLPUSH l l"],
        )),
        lp(case("LPOP every element", &[l], &["l"], &["LPOP l 8"])),
        lp(case("DEL", &[l], &["l"], &["DEL l"])),
        lp(case(
            "RPUSH with a TTL",
            &[l, "PEXPIRE l 5000000"],
            &["l"],
            &["RPUSH l w"],
        )),
        lp(case(
            "pops and pushes",
            &[l],
            &["l"],
            &["LPOP l 2", "RPUSH l a", "LPUSH l k", "RPOP l"],
        )),
        lp(case("RPUSH a big element converts", &[l], &["l"], &[])).write_args(vec![
            "RPUSH".into(),
            "l".into(),
            big_elem,
        ]),
        // Close to list-max-listpack-size (8 kB): one more element makes it a quicklist, and
        // popping it does not make it a listpack again (that needs half the size).
        lp(case(
            "RPUSH past list-max-listpack-size converts",
            &[],
            &["l"],
            &[],
        ))
        .setup_args(with_members(
            "RPUSH",
            "l",
            (0..15).map(|i| format!("{i:0>500}")),
        ))
        .write_args(with_members("RPUSH", "l", ["y".repeat(1000)])),
        // One key small, the other a big quicklist.
        lp(case(
            "LMOVE into a big list",
            &[l],
            &["l", "big"],
            &["LMOVE l big LEFT RIGHT"],
        ))
        .setup_args(with_members("RPUSH", "big", big.clone()))
        .large("big", &["quicklist"]),
        lp(case(
            "RPOPLPUSH out of a big list",
            &[l],
            &["l", "big"],
            &["RPOPLPUSH big l"],
        ))
        .setup_args(with_members("RPUSH", "big", big))
        .large("big", &["quicklist"]),
    ];
    check(&s, cases);
}

// ----- strings -------------------------------------------------------------------------------

#[test]
fn strings_roll_back_byte_exact() {
    let s = Server::start();
    let long = "r".repeat(60);
    let int = |c: Case| c.encoded("n", &["int"]);
    let emb = |c: Case| c.encoded("e", &["embstr"]);
    let raw = |c: Case| c.encoded("r", &["raw"]);
    let set_raw = vec!["SET".to_string(), "r".to_string(), long.clone()];
    let cases = vec![
        int(case("INCR", &["SET n 123"], &["n"], &["INCR n"])),
        int(case("SET", &["SET n 123"], &["n"], &["SET n abc"])),
        int(case("APPEND", &["SET n 123"], &["n"], &["APPEND n 4"])),
        int(case(
            "big int",
            &["SET n 9223372036854775807"],
            &["n"],
            &["DECR n"],
        )),
        int(case(
            "INCRBY, DECRBY with a TTL",
            &["SET n -17 PX 5000000"],
            &["n"],
            &["INCRBY n 40", "DECRBY n -3", "INCR n"],
        )),
        int(case(
            "DECRBY to the smallest integer",
            &["SET n -9223372036854775807"],
            &["n"],
            &["DECRBY n 1"],
        )),
        emb(case("SET", &["SET e hello"], &["e"], &["SET e 42"])),
        emb(case("APPEND", &["SET e hello"], &["e"], &["APPEND e !"])),
        emb(case(
            "SETRANGE",
            &["SET e hello"],
            &["e"],
            &["SETRANGE e 1 a"],
        )),
        emb(case("SETBIT", &["SET e hello"], &["e"], &["SETBIT e 3 1"])),
        emb(case("GETDEL", &["SET e hello"], &["e"], &["GETDEL e"])),
        emb(case(
            "SET with a TTL",
            &["SET e hello PX 5000000"],
            &["e"],
            &["SET e x KEEPTTL"],
        )),
        emb(case("EXPIRE", &["SET e hello"], &["e"], &["EXPIRE e 100"])),
        emb(case(
            "INCRBYFLOAT",
            &["SET e 1.5"],
            &["e"],
            &["INCRBYFLOAT e 2"],
        )),
        raw(case("SET", &[], &["r"], &["SET r short"])).setup_args(set_raw.clone()),
        raw(case("APPEND", &[], &["r"], &["APPEND r tail"])).setup_args(set_raw.clone()),
        raw(case("DEL", &[], &["r"], &["DEL r"])).setup_args(set_raw),
        // Either side of the longest compact string (44 bytes): txu reads a longer one
        // through the key API, a shorter one with GET, and neither changes it.
        case(
            "44 bytes with a TTL, SET",
            &[format!("SET e {} PX 5000000", "e".repeat(44)).as_str()],
            &["e"],
            &["SET e x"],
        )
        .encoded("e", &["embstr", "raw"]),
        raw(case(
            "45 bytes with a TTL, SET",
            &[format!("SET r {} PX 5000000", "r".repeat(45)).as_str()],
            &["r"],
            &["SET r x"],
        )),
        raw(case(
            "45 bytes with a TTL, SETRANGE then GETEX PERSIST",
            &[format!("SET r {} PX 5000000", "r".repeat(45)).as_str()],
            &["r"],
            &["SETRANGE r 0 1", "GETEX r PERSIST"],
        )),
        // A short raw string: DUMP-exact; it comes back embstr (`string_encoding_may_change`).
        raw(case(
            "short raw, SET",
            &["SET r abc", "APPEND r d"],
            &["r"],
            &["SET r x"],
        )),
    ];
    check(&s, cases);
}

/// Reading a string's pre-image changes nothing about it: a committed write that leaves the
/// value alone (`SETNX`, `SET NX`, `GETEX` without options on an existing key) keeps its
/// `DUMP`, encoding and expiry, whatever the string's length (the key API reads long strings,
/// `GET` short ones), in `TXU.RUN` and in `TXU.EXEC`.
#[test]
fn reading_a_string_pre_image_leaves_the_string_as_it_was() {
    let s = Server::start();
    let mut c = s.raw();
    // 44 bytes is embstr on Redis 7.0, raw where the key is embedded too (Redis 8, Valkey 8).
    let values = [
        (&["int"][..], "12345".to_string()),
        (&["embstr"][..], "e".repeat(20)),
        (&["embstr", "raw"][..], "e".repeat(44)),
        (&["raw"][..], "r".repeat(45)),
        (&["raw"][..], "r".repeat(100)),
    ];
    for (encoding, value) in &values {
        for ttl in [false, true] {
            let key = format!("pre:{}:{ttl}", value.len());
            let mut set = vec!["SET", key.as_str(), value.as_str()];
            if ttl {
                set.extend(["PX", "5000000"]);
            }
            assert_eq!(show(&cmd(&mut c, &set)), "+OK\r\n");
            let before = rep(&mut c, &key);
            assert!(
                before
                    .encoding
                    .as_deref()
                    .is_some_and(|e| encoding.contains(&e)),
                "{key}: {:?}",
                before.encoding
            );
            let k = key.as_str();
            let replies = [
                cmd(&mut c, &["TXU.RUN", "3", "SETNX", k, "x"]),
                cmd(&mut c, &["TXU.RUN", "4", "SET", k, "x", "NX"]),
                cmd(&mut c, &["TXU.RUN", "2", "GETEX", k]),
                common::exec_tx(&mut c, &[], &[words(&format!("SETNX {k} y"))]).1,
            ];
            for r in &replies {
                assert!(r.first() == Some(&b'*'), "{key}: {}", esc(r));
            }
            assert_eq!(rep(&mut c, &key), before, "{key}: changed by a no-op write");
        }
    }
}

// ----- several keys --------------------------------------------------------------------------

#[test]
fn several_small_keys_in_one_transaction_roll_back_byte_exact() {
    let s = Server::start();
    let setup = [
        "HSET h a 1 b 2 c 3",
        "SADD si 1 2 3",
        "ZADD z 1 a 2 b",
        "RPUSH l a b c",
        "SET n 10",
    ];
    let keys = ["h", "si", "z", "l", "n"];
    let cases = vec![case(
        "one write per type",
        &setup,
        &keys,
        &[
            "HDEL h a",
            "SADD si x",
            "ZINCRBY z 5 a",
            "LPOP l",
            "INCR n",
            "HSET h a 9",
            "SREM si 1",
        ],
    )
    .encoded("h", &["listpack"])
    .encoded("si", &["intset"])
    .encoded("z", &["listpack"])];
    check(&s, cases);
}

// ----- what the pre-images cost --------------------------------------------------------------

fn info_txu(c: &mut RawConn, field: &str) -> u64 {
    let r = cmd(c, &["INFO", "txu"]);
    let text = bulk_body(&r).map(show).unwrap_or_default();
    common::parse_info(&text)
        .get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO txu has no number {field}: {text}"))
}

/// `txu_preimage_bytes` taken by a committed transaction of `writes`.
fn preimage_bytes(c: &mut RawConn, writes: &[&str]) -> u64 {
    let before = info_txu(c, "txu_preimage_bytes");
    let r = txu(c, writes);
    assert!(r.first() == Some(&b'*'), "{writes:?}: {}", esc(&r));
    info_txu(c, "txu_preimage_bytes") - before
}

/// A key in a compact encoding is copied whole (its `DUMP`); a key in a large encoding keeps
/// its element-level pre-images: one `HSET` on a big hash never copies the hash.
#[test]
fn small_keys_are_copied_whole_and_big_keys_element_by_element() {
    let s = Server::start();
    let mut c = s.raw();
    let n = config(&s, "hash-max-listpack-entries")
        .max(config(&s, "set-max-intset-entries"))
        .max(config(&s, "zset-max-listpack-entries"))
        + 100;
    let setups: Vec<Vec<String>> = vec![
        words("HSET small:h a 1 b 2"),
        words("SADD small:s 1 2 3"),
        words("ZADD small:z 1 a 2 b"),
        hset_n("big:h", n),
        with_members("SADD", "big:s", (0..n).map(|i| format!("m{i}"))),
        with_members(
            "ZADD",
            "big:z",
            (0..n).flat_map(|i| [i.to_string(), format!("m{i}")]),
        ),
        with_members("RPUSH", "big:l", (0..n).map(|i| format!("{i:0>100}"))),
    ];
    for a in &setups {
        let r = cmd(&mut c, &as_strs(a));
        assert!(r.first() != Some(&b'-'), "{a:?}: {}", esc(&r));
    }
    for (key, write) in [
        ("small:h", "HDEL small:h a"),
        ("small:s", "SADD small:s x"),
        ("small:z", "ZREM small:z a"),
    ] {
        let dump = bulk_body(&cmd(&mut c, &["DUMP", key])).map_or(0, <[u8]>::len);
        let got = preimage_bytes(&mut c, &[write]);
        assert_eq!(got, (key.len() + dump) as u64, "{write}: a whole-key copy");
    }
    for write in [
        "HSET big:h f3 x",
        "SREM big:s m3",
        "ZADD big:z 0.5 m3",
        "LPOP big:l",
    ] {
        let got = preimage_bytes(&mut c, &[write]);
        assert!(
            got < 200,
            "{write}: {got} pre-image bytes, should be element-level"
        );
    }
}

// ----- configs changed at runtime -----------------------------------------------------------

/// txu reads the `*-max-listpack-*` configs when it first needs them and again after every
/// `CONFIG SET`: a hash that grows in a listpack past the old limit still rolls back exactly.
/// (A limit lowered below a listpack's size is another matter: the server converts the key at
/// its next write, and converts what `RESTORE` loads, so no rollback can give it back its
/// listpack; the README says so.)
#[test]
fn listpack_limits_changed_at_runtime_are_followed() {
    let s = Server::start();
    let max = config(&s, "hash-max-listpack-entries");
    let mut c = s.raw();
    // A first transaction: txu has read the configs.
    assert!(txu(&mut c, &["HSET warm a 1"]).first() == Some(&b'*'));

    let raised = (max + 200).to_string();
    let r = cmd(
        &mut c,
        &["CONFIG", "SET", "hash-max-listpack-entries", &raised],
    );
    assert_eq!(show(&r), "+OK\r\n");
    let grown = case(
        "HDEL on a listpack grown past the old limit",
        &[],
        &["h"],
        &["HDEL h f0"],
    )
    .setup_args(hset_n("h", max + 100))
    .encoded("h", &["listpack"]);
    check(&s, vec![grown]);
}

/// `calls` of `cmdstat_<name>` in `INFO commandstats` (0 before the first call).
fn command_calls(c: &mut RawConn, name: &str) -> u64 {
    let r = cmd(c, &["INFO", "commandstats"]);
    let text = bulk_body(&r).map(show).unwrap_or_default();
    let field = format!("cmdstat_{name}");
    common::parse_info(&text).get(&field).map_or(0, |v| {
        v.split(',')
            .find_map(|p| p.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{field}: {v}"))
    })
}

/// txu asks for a key's encoding only when the key API cannot rule out a compact one, and
/// once per key and transaction: what counts is the key before the transaction, and a key it
/// did not copy whole at its first write is undone element by element from then on.
#[test]
fn encodings_are_asked_once_per_key_and_never_for_big_keys() {
    let s = Server::start();
    let mut c = s.raw();
    let n = config(&s, "hash-max-listpack-entries") + 10;
    // A small hash in a hashtable (one long value), and a big one.
    let long = "v".repeat(100);
    for a in [
        vec![
            "HSET".to_string(),
            "small".into(),
            "a".into(),
            long,
            "b".into(),
            "1".into(),
        ],
        hset_n("big", n),
    ] {
        let r = cmd(&mut c, &as_strs(&a));
        assert!(r.first() != Some(&b'-'), "{}", esc(&r));
    }
    // A write that changes nothing (HDEL of a field that is not there) records nothing: the
    // hash is still large, and is not asked about again.
    let writes = [
        "HDEL small nothing",
        "HSET small c 1",
        "HSET small d 2",
        "HINCRBY small b 1",
        "HDEL small c",
        "HSET big f1 x",
        "HDEL big f2",
    ];
    let before = command_calls(&mut c, "object|encoding");
    let r = txu(&mut c, &writes);
    assert!(r.first() == Some(&b'*'), "{}", esc(&r));
    assert_eq!(command_calls(&mut c, "object|encoding") - before, 1);
    // A rename in between: the name may hold another value, it is asked again.
    let r = cmd(&mut c, &["SET", "other", "x"]);
    assert!(r.first() != Some(&b'-'), "{}", esc(&r));
    let writes = [
        "HDEL small nothing",
        "RENAME other o2",
        "HDEL small nothing",
    ];
    let before = command_calls(&mut c, "object|encoding");
    let r = txu(&mut c, &writes);
    assert!(r.first() == Some(&b'*'), "{}", esc(&r));
    assert_eq!(command_calls(&mut c, "object|encoding") - before, 2);
}

/// Whether hash fields can have TTLs on this server (`HPEXPIRETIME` exists: Redis >= 7.4).
fn has_field_ttls(c: &mut RawConn) -> bool {
    array_items(&cmd(c, &["COMMAND", "INFO", "HPEXPIRETIME"]))
        .is_some_and(|items| items.first().is_some_and(|i| i.first() == Some(&b'*')))
}

/// Writes that only add or update short elements of a small hash or sorted set (`HSET`,
/// `HINCRBY`, `ZADD`, `ZINCRBY` within the `*-max-listpack-*` limits) keep a listpack a
/// listpack, and their element-level undo puts it back byte for byte: txu asks neither for
/// the key's encoding nor for a copy (`DUMP`), and reads the scores through the key API (no
/// `ZMSCORE`). A write that could reorder or convert the key asks then, once.
#[test]
fn writes_that_keep_a_listpack_compact_ask_nothing() {
    let s = Server::start();
    let mut c = s.raw();
    // Where hash fields may have TTLs (Redis >= 7.4), a listpack orders fields by TTL: hash
    // writes ask there.
    let field_ttls = has_field_ttls(&mut c);
    for a in ["HSET h a 1 b 2", "ZADD z 1 a 2 b"] {
        let r = cmd(&mut c, &as_strs(&words(a)));
        assert!(r.first() == Some(&b':'), "{a}: {}", esc(&r));
    }
    let calls = |c: &mut RawConn| {
        ["object|encoding", "dump", "zmscore", "hmget"].map(|n| command_calls(c, n))
    };
    let mut writes = vec!["ZADD z 3 c 5 a", "ZINCRBY z 1 b"];
    if !field_ttls {
        writes.extend(["HSET h c 3 a 9", "HINCRBY h b 1"]);
    }
    let before = calls(&mut c);
    let got = preimage_bytes(&mut c, &writes);
    let after = calls(&mut c);
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(
        delta,
        [0, 0, 0, 0],
        "OBJECT ENCODING, DUMP, ZMSCORE, HMGET calls of {writes:?}"
    );
    assert!(got < 100, "{got} pre-image bytes: element by element");
    // A removal could reorder the listpack: the encoding is asked, and the key copied whole.
    let before = calls(&mut c);
    let r = txu(&mut c, &["ZADD z 4 d", "ZREM z a"]);
    assert!(r.first() == Some(&b'*'), "{}", esc(&r));
    let after = calls(&mut c);
    assert_eq!(
        [after[0] - before[0], after[1] - before[1]],
        [1, 1],
        "OBJECT ENCODING, DUMP calls"
    );
}

/// The values a write to a large hash overwrites are read through the key API (no `HMGET`
/// call) on servers without hash-field TTLs, binary values included, and put back exactly;
/// where fields may have TTLs (Redis >= 7.4) `HMGET` and `HPEXPIRETIME` are asked.
#[test]
fn large_hash_pre_images_read_through_the_key_api() {
    let s = Server::start();
    let mut c = s.raw();
    let long = "v".repeat(100);
    let binary = "a\u{0}b\r\nc";
    for args in [
        vec!["HSET", "h", "long", long.as_str(), "bin", binary, "n", "12"],
        vec!["SET", FAIL_KEY, "x"],
    ] {
        let r = cmd(&mut c, &args);
        assert!(r.first() != Some(&b'-'), "{}", esc(&r));
    }
    let enc = simple_or_bulk(&cmd(&mut c, &["OBJECT", "ENCODING", "h"]));
    assert_eq!(enc.as_deref(), Some("hashtable"));
    let field_ttls = has_field_ttls(&mut c);
    let before = rep(&mut c, "h");
    let hmget = command_calls(&mut c, "hmget");
    let lines: Vec<Vec<String>> = [
        "HSET h bin other",
        "HINCRBY h n 5",
        "HDEL h long",
        "HSET h new 1",
    ]
    .iter()
    .map(|l| words(l))
    .chain([vec!["INCR".to_string(), FAIL_KEY.to_string()]])
    .collect();
    let reply = common::exec_tx(&mut c, &[], &lines).1;
    assert!(
        show(&reply).starts_with("-ROLLBACK command 5 (INCR) failed: "),
        "{}",
        esc(&reply)
    );
    // A hashtable: contents, encoding and expiry, not its order (`DUMP`).
    let after = rep(&mut c, "h");
    assert_eq!(difference(&before, &after, true), None);
    let asked = command_calls(&mut c, "hmget") - hmget;
    if field_ttls {
        assert!(asked > 0, "HMGET expected where fields may have TTLs");
    } else {
        assert_eq!(asked, 0, "HMGET called: the key API should have answered");
    }
}

/// `LTRIM` of a few elements reads them through the key API (no `LRANGE` call), more than 16
/// with `LRANGE`; either way the list comes back with the same contents.
#[test]
fn short_list_pre_images_read_through_the_key_api() {
    let s = Server::start();
    let mut c = s.raw();
    let r = cmd(&mut c, &["SET", FAIL_KEY, "x"]);
    assert!(r.first() != Some(&b'-'), "{}", esc(&r));
    // Long elements: a quicklist on every server, whose element-level undo txu keeps.
    let long = "e".repeat(3000);
    for (trim, lranges) in [("LTRIM l 2 -4", 0), ("LTRIM l 0 -21", 1)] {
        let r = cmd(&mut c, &["DEL", "l"]);
        assert!(r.first() == Some(&b':'), "{}", esc(&r));
        for i in 0..40 {
            let v = format!("{i}{long}");
            let r = cmd(&mut c, &["RPUSH", "l", &v]);
            assert!(r.first() == Some(&b':'), "{}", esc(&r));
        }
        let enc = simple_or_bulk(&cmd(&mut c, &["OBJECT", "ENCODING", "l"]));
        assert_eq!(enc.as_deref(), Some("quicklist"));
        let before = rep(&mut c, "l");
        let calls = command_calls(&mut c, "lrange");
        let lines = vec![words(trim), vec!["INCR".to_string(), FAIL_KEY.to_string()]];
        let reply = common::exec_tx(&mut c, &[], &lines).1;
        assert!(
            show(&reply).starts_with("-ROLLBACK command 2 (INCR) failed: "),
            "{trim}: {}",
            esc(&reply)
        );
        // (Before `rep`, which reads the list with LRANGE.)
        assert_eq!(command_calls(&mut c, "lrange") - calls, lranges, "{trim}");
        assert_eq!(difference(&before, &rep(&mut c, "l"), true), None, "{trim}");
    }
}
