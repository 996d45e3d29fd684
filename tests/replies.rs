//! `TXU.EXEC` (and `TXU.RUN`, for the same commands) forwards each queued command's reply byte
//! for byte as the command would have sent it directly, for RESP2 and RESP3 clients: bulk vs simple strings, nil, null arrays,
//! integers, doubles, maps, sets, nested arrays, binary payloads and verbatim strings.
//!
//! Method: load data, run each command directly on a fresh connection and keep its raw reply,
//! then run the same commands in one TXU transaction on another fresh connection and compare
//! the `TXU.EXEC` reply with an array header plus the concatenated direct replies. The commands
//! are reads or writes that leave the data as it was, which the digest confirms.

mod common;

use common::{array_items, esc, exec_tx, run_frames, txu, RawConn, Server};

/// Data every comparison reads. Returns nothing; panics when a write fails.
fn load_data(s: &Server) {
    let mut c = s.raw();
    let bin: &[u8] = b"bin\0\r\n\xff\xfe$3\r\n*1\r\n";
    let setup: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"str", b"hello"],
        vec![b"SET", b"bin", bin],
        vec![b"SET", b"num", b"42"],
        vec![b"HSET", b"h", b"f1", b"v1", b"f2", b"v2", b"f3", bin],
        vec![b"RPUSH", b"l", b"a", b"b", b"c", bin],
        vec![b"SADD", b"s", b"m1", b"m2", b"m3"],
        vec![b"SADD", b"ints", b"1", b"2", b"3"],
        vec![
            b"ZADD", b"z", b"1.5", b"a", b"2", b"b", b"3.25", b"c", b"-inf", b"low",
        ],
        vec![b"XADD", b"st", b"1-1", b"f", b"v"],
        vec![b"XADD", b"st", b"2-1", b"f2", b"v2", b"f3", bin],
        vec![b"XGROUP", b"CREATE", b"st", b"g", b"0"],
        vec![b"PFADD", b"hll", b"a", b"b", b"c"],
        // PFCOUNT caches the cardinality inside the value: do it once before comparing.
        vec![b"PFCOUNT", b"hll"],
        vec![
            b"GEOADD",
            b"geo",
            b"13.361389",
            b"38.115556",
            b"Palermo",
            b"15.087269",
            b"37.502669",
            b"Catania",
        ],
        vec![b"SETBIT", b"bits", b"7", b"1"],
    ];
    for args in &setup {
        let r = c.cmd(args);
        assert!(
            !r.starts_with(b"-"),
            "setup {}: {}",
            esc(&args.concat()),
            esc(&r)
        );
    }
}

/// The commands compared. Every one leaves the data unchanged.
fn commands() -> Vec<Vec<&'static [u8]>> {
    vec![
        // Bulk vs simple strings, nil.
        vec![b"GET", b"str"],
        vec![b"GET", b"missing"],
        vec![b"GET", b"bin"],
        vec![b"SET", b"str", b"hello"],
        vec![b"TYPE", b"str"],
        vec![b"TYPE", b"missing"],
        vec![b"PING"],
        vec![b"PING", b"payload\r\n"],
        vec![b"ECHO", b"\0echo"],
        vec![b"GETRANGE", b"bin", b"0", b"-1"],
        vec![b"OBJECT", b"ENCODING", b"l"],
        // Integers.
        vec![b"EXISTS", b"str", b"missing"],
        vec![b"STRLEN", b"bin"],
        vec![b"INCRBY", b"num", b"0"],
        vec![b"TTL", b"str"],
        vec![b"BITCOUNT", b"bits"],
        vec![b"PFCOUNT", b"hll"],
        vec![b"SISMEMBER", b"s", b"m1"],
        // Null arrays (RESP2 `*-1`) and nil.
        vec![b"LPOP", b"missing", b"1"],
        vec![b"LMPOP", b"1", b"missing", b"LEFT"],
        vec![b"ZRANDMEMBER", b"missing"],
        vec![b"SRANDMEMBER", b"missing"],
        vec![b"SRANDMEMBER", b"missing", b"2"],
        vec![b"HRANDFIELD", b"missing"],
        vec![b"XRANGE", b"missing", b"-", b"+"],
        // Doubles.
        vec![b"ZSCORE", b"z", b"a"],
        vec![b"ZSCORE", b"z", b"low"],
        vec![b"ZSCORE", b"z", b"missing"],
        vec![b"ZINCRBY", b"z", b"0", b"c"],
        vec![b"ZMSCORE", b"z", b"a", b"missing", b"c"],
        vec![b"GEODIST", b"geo", b"Palermo", b"Catania"],
        vec![b"GEOPOS", b"geo", b"Palermo", b"missing"],
        // Maps.
        vec![b"HGETALL", b"h"],
        vec![b"HGETALL", b"missing"],
        vec![b"XINFO", b"STREAM", b"st"],
        vec![b"XINFO", b"GROUPS", b"st"],
        // Sets.
        vec![b"SMEMBERS", b"s"],
        vec![b"SMEMBERS", b"ints"],
        vec![b"SMEMBERS", b"missing"],
        vec![b"SINTER", b"s", b"s"],
        // Arrays, nested arrays, arrays with nil inside.
        vec![b"LRANGE", b"l", b"0", b"-1"],
        vec![b"HMGET", b"h", b"f1", b"nofield", b"f3"],
        vec![b"XRANGE", b"st", b"-", b"+"],
        vec![b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"],
        vec![b"ZRANGE", b"z", b"0", b"-1"],
        vec![b"ZPOPMIN", b"missing"],
        vec![b"HSCAN", b"h", b"0"],
        vec![b"SSCAN", b"s", b"0"],
        vec![b"ZSCAN", b"z", b"0"],
        // Binary payloads.
        vec![b"DUMP", b"bin"],
        vec![b"DUMP", b"st"],
        vec![b"DUMP", b"missing"],
        // Verbatim string (RESP3), bulk (RESP2).
        vec![b"LOLWUT", b"VERSION", b"1"],
    ]
}

/// Runs the comparison for one protocol version (2 or 3).
fn compare(resp3: bool) {
    let s = Server::start();
    load_data(&s);
    let digest = s.digest();
    let cmds = commands();
    let connect = || {
        let mut c = s.raw();
        if resp3 {
            c.hello3();
        }
        c
    };

    let mut direct = connect();
    let want: Vec<Vec<u8>> = cmds.iter().map(|a| direct.cmd(a)).collect();
    for (a, r) in cmds.iter().zip(&want) {
        assert!(
            !r.starts_with(b"-") && !r.starts_with(b"!"),
            "direct {} failed: {}",
            esc(&a.concat()),
            esc(r)
        );
    }
    assert_eq!(s.digest(), digest, "the direct commands changed the data");

    let (_, got) = exec_tx(&mut connect(), &[], &cmds);
    assert_eq!(s.digest(), digest, "the transaction changed the data");
    // TXU.RUN replies exactly what TXU.EXEC does for the same commands.
    let by_run = run_frames(&mut connect(), &[], &cmds);
    assert_eq!(s.digest(), digest, "TXU.RUN changed the data");
    assert!(
        by_run == got,
        "RESP{}: TXU.RUN and TXU.EXEC replies differ:\n  run:  {}\n  exec: {}",
        if resp3 { 3 } else { 2 },
        esc(&by_run),
        esc(&got)
    );

    let mut expected = format!("*{}\r\n", cmds.len()).into_bytes();
    for r in &want {
        expected.extend_from_slice(r);
    }
    if got == expected {
        return;
    }
    // Say which replies differ.
    let Some(parts) = array_items(&got) else {
        panic!(
            "RESP{}: TXU.EXEC reply is not an array of {} replies: {}",
            if resp3 { 3 } else { 2 },
            cmds.len(),
            esc(&got)
        );
    };
    let mut diffs = Vec::new();
    for (i, a) in cmds.iter().enumerate() {
        let g = parts.get(i).copied().unwrap_or(b"<missing>");
        if g != want[i].as_slice() {
            diffs.push(format!(
                "  {}\n    direct: {}\n    txu:    {}",
                esc(&a.concat()),
                esc(&want[i]),
                esc(g)
            ));
        }
    }
    panic!(
        "RESP{}: {} of {} replies differ ({} replies in TXU.EXEC):\n{}",
        if resp3 { 3 } else { 2 },
        diffs.len(),
        cmds.len(),
        parts.len(),
        diffs.join("\n")
    );
}

#[test]
fn exec_replies_are_byte_identical_in_resp2() {
    compare(false);
}

#[test]
fn exec_replies_are_byte_identical_in_resp3() {
    compare(true);
}

/// The reply types themselves, so the comparison above provably covers them: RESP2 null array
/// and bulk doubles; RESP3 null, double, map, set and verbatim string.
#[test]
fn the_compared_replies_cover_every_type() {
    let s = Server::start();
    load_data(&s);
    let mut c2 = s.raw();
    let mut c3 = s.raw();
    c3.hello3();
    let first = |c: &mut RawConn, args: &[&[u8]]| c.cmd(args)[0];
    assert_eq!(c2.cmd(&[b"LPOP", b"missing", b"1"]), b"*-1\r\n");
    assert_eq!(c2.cmd(&[b"GET", b"missing"]), b"$-1\r\n");
    assert_eq!(first(&mut c2, &[b"ZSCORE", b"z", b"a"]), b'$');
    assert_eq!(first(&mut c2, &[b"TYPE", b"str"]), b'+');
    assert_eq!(first(&mut c2, &[b"LOLWUT", b"VERSION", b"1"]), b'$');
    assert_eq!(c3.cmd(&[b"LPOP", b"missing", b"1"]), b"_\r\n");
    assert_eq!(c3.cmd(&[b"ZSCORE", b"z", b"a"]), b",1.5\r\n");
    assert_eq!(first(&mut c3, &[b"HGETALL", b"h"]), b'%');
    assert_eq!(first(&mut c3, &[b"XINFO", b"STREAM", b"st"]), b'%');
    assert_eq!(first(&mut c3, &[b"SMEMBERS", b"s"]), b'~');
    assert_eq!(first(&mut c3, &[b"LOLWUT", b"VERSION", b"1"]), b'=');
    assert_eq!(first(&mut c3, &[b"DUMP", b"bin"]), b'$');
}

/// The same holds when only some commands of a transaction return special types, and for a
/// transaction whose replies are all nil.
#[test]
fn nil_only_and_mixed_transactions() {
    let s = Server::start();
    load_data(&s);
    for resp3 in [false, true] {
        let mut c = s.raw();
        if resp3 {
            c.hello3();
        }
        let nil: &[u8] = if resp3 { b"_\r\n" } else { b"$-1\r\n" };
        let null_array: &[u8] = if resp3 { b"_\r\n" } else { b"*-1\r\n" };
        let mut want = b"*3\r\n".to_vec();
        want.extend_from_slice(nil);
        want.extend_from_slice(null_array);
        want.extend_from_slice(nil);
        let got = txu(&mut c, &["GET missing", "LPOP missing 1", "GET missing2"]);
        assert!(
            got == want,
            "RESP{}: {} want {}",
            if resp3 { 3 } else { 2 },
            esc(&got),
            esc(&want)
        );
    }
}
