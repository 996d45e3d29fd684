//! No input crashes the server: binary keys and values, huge arguments, 10,000-command
//! transactions, commands with zero arguments, names with NUL, CR/LF and 0xff bytes. After
//! every case the server still runs and answers PING, and error replies stay one clean line.

mod common;

use common::{
    assert_rolled_back, begin, bulk_bytes, encode_command, error_text, esc, queue_bytes, show,
    RawConn, Server, EXECABORT, QUEUED,
};

const OK: &[u8] = b"+OK\r\n";

fn assert_reply(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}:\n got  {}\n want {}",
        esc(got),
        esc(want)
    );
}

/// The server process runs and a new connection gets PONG.
fn assert_alive(s: &mut Server, after: &str) {
    assert!(s.is_running(), "server died after {after}");
    let mut c = s.raw();
    assert_reply(
        &c.cmd(&[b"PING"]),
        b"+PONG\r\n",
        &format!("PING after {after}"),
    );
}

/// Sends many commands at once and checks each reply is `want`.
fn pipeline_expect(c: &mut RawConn, cmds: &[Vec<u8>], want: &[u8]) {
    let all: Vec<u8> = cmds.concat();
    c.send_raw(&all);
    for (i, _) in cmds.iter().enumerate() {
        let r = c.read_reply();
        assert_reply(&r, want, &format!("pipelined command {i}"));
    }
}

fn dbsize(c: &mut RawConn) -> usize {
    let r = show(&c.cmd(&[b"DBSIZE"]));
    r.strip_prefix(':')
        .and_then(|x| x.strip_suffix("\r\n"))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("DBSIZE: {r:?}"))
}

const BINARY: &[&[u8]] = &[
    b"nul\0inside",
    b"\0",
    b"crlf\r\nin\r\nside",
    b"\r\n",
    b"\xff\xfe\xfd",
    b"$5\r\n*1\r\n:3\r\n-ERR fake\r\n",
    b"",
    b"mixed\0\r\n\xff\x80end",
];

#[test]
fn binary_keys_and_values_round_trip_byte_for_byte() {
    let mut s = Server::start();
    let mut c = s.raw();
    let key = |i: usize| {
        let mut k = b"key\0".to_vec();
        k.extend_from_slice(BINARY[i]);
        k.push(i as u8);
        k
    };
    begin(&mut c);
    for (i, v) in BINARY.iter().enumerate() {
        queue_bytes(&mut c, &[b"SET", &key(i), v]);
    }
    for i in 0..BINARY.len() {
        queue_bytes(&mut c, &[b"GET", &key(i)]);
    }
    // A key that is only binary, read back with a list command.
    queue_bytes(&mut c, &[b"RPUSH", b"\xff\r\n\0", BINARY[2], BINARY[4]]);
    queue_bytes(&mut c, &[b"LRANGE", b"\xff\r\n\0", b"0", b"-1"]);
    let mut want = format!("*{}\r\n", 2 * BINARY.len() + 2).into_bytes();
    for _ in BINARY {
        want.extend_from_slice(OK);
    }
    for v in BINARY {
        want.extend(bulk_bytes(v));
    }
    want.extend_from_slice(b":2\r\n*2\r\n");
    want.extend(bulk_bytes(BINARY[2]));
    want.extend(bulk_bytes(BINARY[4]));
    assert_reply(&c.cmd(&[b"TXU.EXEC"]), &want, "TXU.EXEC of binary SET/GET");
    for (i, v) in BINARY.iter().enumerate() {
        assert_reply(&c.cmd(&[b"GET", &key(i)]), &bulk_bytes(v), "direct GET");
    }
    assert_alive(&mut s, "binary keys and values");

    // Binary keys in a rolled-back transaction come back byte-exact.
    let digest = s.digest();
    begin(&mut c);
    for (i, v) in BINARY.iter().enumerate() {
        queue_bytes(&mut c, &[b"APPEND", &key(i), v]);
        queue_bytes(&mut c, &[b"SET", &[v, &b"\0new"[..]].concat(), b"\r\n"]);
    }
    queue_bytes(&mut c, &[b"DEL", b"\xff\r\n\0"]);
    queue_bytes(&mut c, &[b"INCR", &key(1)]);
    assert_rolled_back(c.cmd(&[b"TXU.EXEC"]), 2 * BINARY.len() + 2, "INCR");
    assert_eq!(s.digest(), digest);
    for (i, v) in BINARY.iter().enumerate() {
        assert_reply(
            &c.cmd(&[b"GET", &key(i)]),
            &bulk_bytes(v),
            "GET after rollback",
        );
    }
    assert_alive(&mut s, "binary rollback");
}

#[test]
fn a_64_mib_value_is_queued_executed_and_rolled_back() {
    const SIZE: usize = 64 << 20;
    let mut s = Server::start();
    let mut c = s.raw();
    // Not compressible and not uniform: every byte value, CR/LF and NUL included.
    let mut big = vec![0u8; SIZE];
    let mut x: u32 = 0x1234_5678;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    begin(&mut c);
    queue_bytes(&mut c, &[b"SET", b"big", &big]);
    queue_bytes(&mut c, &[b"STRLEN", b"big"]);
    queue_bytes(&mut c, &[b"GET", b"big"]);
    let mut want = format!("*3\r\n+OK\r\n:{SIZE}\r\n").into_bytes();
    want.extend(bulk_bytes(&big));
    let r = c.cmd(&[b"TXU.EXEC"]);
    assert!(r == want, "TXU.EXEC with a 64 MiB value: {}", esc(&r));
    assert_alive(&mut s, "a 64 MiB value");

    // Change it and fail: the 64 MiB pre-image is put back.
    let digest = s.digest();
    begin(&mut c);
    queue_bytes(&mut c, &[b"APPEND", b"big", b"tail"]);
    queue_bytes(&mut c, &[b"SETRANGE", b"big", b"0", &big[..1 << 20]]);
    queue_bytes(&mut c, &[b"LPUSH", b"big", b"x"]);
    let cause = assert_rolled_back(c.cmd(&[b"TXU.EXEC"]), 3, "LPUSH");
    assert!(cause.starts_with("WRONGTYPE"), "{cause:?}");
    assert_eq!(s.digest(), digest);
    assert_reply(
        &c.cmd(&[b"STRLEN", b"big"]),
        format!(":{SIZE}\r\n").as_bytes(),
        "STRLEN after rollback",
    );
    assert_alive(&mut s, "a 64 MiB rollback");
}

#[test]
fn a_10000_key_mset_commits_and_rolls_back() {
    let mut s = Server::start();
    let mut c = s.raw();
    let pairs: Vec<Vec<u8>> = (0..10_000)
        .flat_map(|i| [format!("m:{i}").into_bytes(), format!("v{i}").into_bytes()])
        .collect();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    mset.extend(pairs.iter().map(Vec::as_slice));

    begin(&mut c);
    queue_bytes(&mut c, &mset);
    queue_bytes(&mut c, &[b"GET", b"m:9999"]);
    let mut want = b"*2\r\n+OK\r\n".to_vec();
    want.extend(bulk_bytes(b"v9999"));
    assert_reply(
        &c.cmd(&[b"TXU.EXEC"]),
        &want,
        "TXU.EXEC of a 10,000-key MSET",
    );
    assert_eq!(dbsize(&mut c), 10_000);
    assert_alive(&mut s, "a 10,000-key MSET");

    // Overwrite all of them and 10,000 new ones, then fail.
    let digest = s.digest();
    let pairs2: Vec<Vec<u8>> = (5_000..15_000)
        .flat_map(|i| [format!("m:{i}").into_bytes(), b"changed".to_vec()])
        .collect();
    let mut mset2: Vec<&[u8]> = vec![b"MSET"];
    mset2.extend(pairs2.iter().map(Vec::as_slice));
    begin(&mut c);
    queue_bytes(&mut c, &mset);
    queue_bytes(&mut c, &mset2);
    queue_bytes(&mut c, &[b"HSET", b"m:0", b"f", b"v"]);
    let cause = assert_rolled_back(c.cmd(&[b"TXU.EXEC"]), 3, "HSET");
    assert!(cause.starts_with("WRONGTYPE"), "{cause:?}");
    assert_eq!(s.digest(), digest);
    assert_eq!(dbsize(&mut c), 10_000);
    assert_alive(&mut s, "a 10,000-key MSET rollback");
}

#[test]
fn a_10000_command_transaction_commits() {
    let mut s = Server::start();
    let mut c = s.raw();
    begin(&mut c);
    let cmds: Vec<Vec<u8>> = (0..10_000)
        .map(|_| encode_command(&[b"TXU.QUEUE", b"INCR", b"counter"]))
        .collect();
    pipeline_expect(&mut c, &cmds, QUEUED.as_bytes());
    let mut want = b"*10000\r\n".to_vec();
    for i in 1..=10_000 {
        want.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    assert_reply(&c.cmd(&[b"TXU.EXEC"]), &want, "10,000 INCRs");
    assert_reply(&c.cmd(&[b"GET", b"counter"]), &bulk_bytes(b"10000"), "GET");
    assert_alive(&mut s, "a 10,000-command transaction");
}

#[test]
fn a_10000_command_transaction_fails_at_the_last_command_and_rolls_back() {
    let mut s = Server::start();
    let mut c = s.raw();
    // Existing data the transaction overwrites: half of its keys, some with a TTL.
    let setup: Vec<Vec<u8>> = (0..5_000)
        .map(|i| {
            let k = format!("k:{i}");
            if i % 2 == 0 {
                encode_command(&[b"SET", k.as_bytes(), b"old", b"EX", b"100000"])
            } else {
                encode_command(&[b"SET", k.as_bytes(), b"old"])
            }
        })
        .collect();
    pipeline_expect(&mut c, &setup, OK);
    assert_reply(&c.cmd(&[b"SET", b"text", b"abc"]), OK, "SET text");
    let digest = s.digest();
    let expire_at = show(&c.cmd(&[b"PEXPIRETIME", b"k:0"]));

    begin(&mut c);
    let cmds: Vec<Vec<u8>> = (0..9_999)
        .map(|i| {
            let k = format!("k:{i}");
            encode_command(&[b"TXU.QUEUE", b"SET", k.as_bytes(), b"new"])
        })
        .collect();
    pipeline_expect(&mut c, &cmds, QUEUED.as_bytes());
    queue_bytes(&mut c, &[b"INCR", b"text"]);
    let cause = assert_rolled_back(c.cmd(&[b"TXU.EXEC"]), 10_000, "INCR");
    assert!(cause.starts_with("ERR "), "{cause:?}");
    assert_eq!(s.digest(), digest, "digest after the rollback");
    assert_eq!(dbsize(&mut c), 5_001);
    assert_eq!(show(&c.cmd(&[b"PEXPIRETIME", b"k:0"])), expire_at);
    assert_reply(&c.cmd(&[b"GET", b"k:9998"]), b"$-1\r\n", "new key gone");
    assert_alive(&mut s, "a 10,000-command rollback");
}

#[test]
fn queue_with_zero_arguments() {
    let mut s = Server::start();
    let mut c = s.raw();
    for inside in [false, true] {
        if inside {
            begin(&mut c);
        }
        // As a RESP array and as an inline command.
        for raw in [&b"*1\r\n$9\r\nTXU.QUEUE\r\n"[..], b"TXU.QUEUE\r\n"] {
            c.send_raw(raw);
            let text = error_text(c.read_reply(), "TXU.QUEUE alone");
            let want = if inside {
                "ERR wrong number of arguments for 'txu.queue' command"
            } else {
                "ERR TXU.QUEUE without TXU.BEGIN"
            };
            assert_eq!(text, want, "inside a transaction: {inside}");
        }
        if inside {
            assert_reply(&c.cmd(&[b"TXU.EXEC"]), EXECABORT.as_bytes(), "EXEC");
        }
        assert_alive(&mut s, "TXU.QUEUE with zero arguments");
    }
}

#[test]
fn unknown_command_names_with_odd_bytes_get_a_clean_error() {
    let mut s = Server::start();
    let mut c = s.raw();
    let long = vec![b'x'; 1 << 20];
    let long_odd: Vec<u8> = (0..1 << 20)
        .map(|i| [b'\r', b'\n', 0, 0xff][i % 4])
        .collect();
    let names: Vec<(&str, &[u8])> = vec![
        ("NUL", b"get\0"),
        ("NUL only", b"\0"),
        ("NUL first", b"\0set"),
        ("CR/LF", b"se\r\nt"),
        ("CRLF only", b"\r\n"),
        ("0xff", b"\xff"),
        ("0xff in a name", b"g\xffet"),
        ("empty", b""),
        ("pipe", b"config|get"),
        ("1 MB", &long),
        ("1 MB of CR/LF/NUL/0xff", &long_odd),
    ];
    for (what, name) in &names {
        begin(&mut c);
        queue_bytes(&mut c, &[b"SET", b"odd:k", b"v"]);
        let r = c.cmd(&[b"TXU.QUEUE", name, b"arg"]);
        let text = error_text(&r, &format!("unknown command ({what})"));
        assert!(
            text.starts_with("ERR unknown command '"),
            "unknown command ({what}): {text:?}"
        );
        assert_reply(&c.cmd(&[b"TXU.EXEC"]), EXECABORT.as_bytes(), what);
        assert_reply(&c.cmd(&[b"EXISTS", b"odd:k"]), b":0\r\n", what);
        assert_alive(&mut s, &format!("an unknown command name ({what})"));
    }
    // Outside a transaction the same names are refused without one.
    for (what, name) in &names {
        let r = c.cmd(&[b"TXU.QUEUE", name]);
        assert_reply(
            &r,
            b"-ERR TXU.QUEUE without TXU.BEGIN\r\n",
            &format!("{what} outside a transaction"),
        );
    }
    assert_alive(&mut s, "unknown command names outside a transaction");
}

#[test]
fn subcommand_names_with_odd_bytes_get_a_clean_error() {
    let mut s = Server::start();
    let mut c = s.raw();
    let long: Vec<u8> = (0..1 << 20)
        .map(|i| [b'\r', b'\n', 0, 0xff][i % 4])
        .collect();
    let cases: Vec<(&[u8], &[u8])> = vec![
        (b"OBJECT", b"encoding\0"),
        (b"OBJECT", b"\0"),
        (b"object", b"enc\r\noding"),
        (b"XINFO", b"\xff"),
        (b"XINFO", b""),
        (b"CONFIG", b"get\0"),
        (b"CLIENT", b"\r\n"),
        (b"OBJECT", &long),
    ];
    for (cmd, sub) in &cases {
        let what = format!("{} {}", esc(cmd), esc(&sub[..sub.len().min(20)]));
        begin(&mut c);
        let r = c.cmd(&[b"TXU.QUEUE", cmd, sub, b"key"]);
        let text = error_text(&r, &what);
        let upper = show(cmd).to_ascii_uppercase();
        assert!(
            text.starts_with("ERR unknown subcommand '")
                && text.ends_with(&format!("' of '{upper}'")),
            "{what}: {text:?}"
        );
        assert_reply(&c.cmd(&[b"TXU.EXEC"]), EXECABORT.as_bytes(), &what);
        assert_alive(&mut s, &format!("subcommand {what}"));
    }
}

#[test]
fn junk_arguments_to_begin_exec_and_rollback() {
    let mut s = Server::start();
    let mut c = s.raw();
    let junk: Vec<&[u8]> = vec![b"junk", b"\0", b"a\r\nb", b"\xff", b"", &[b'z'; 100_000]];
    for j in &junk {
        let what = format!("TXU.BEGIN {}", esc(&j[..j.len().min(20)]));
        let text = error_text(c.cmd(&[b"TXU.BEGIN", j]), &what);
        assert!(text.starts_with("ERR syntax error: "), "{what}: {text:?}");
        // It opened nothing.
        assert_reply(
            &c.cmd(&[b"TXU.EXEC"]),
            b"-ERR TXU.EXEC without TXU.BEGIN\r\n",
            &what,
        );
        let more = c.cmd(&[b"TXU.BEGIN", j, b"more", b"args"]);
        error_text(&more, &format!("{what} more args"));
        assert_alive(&mut s, &what);
    }

    // TXU.EXEC with an argument is an error, with and without an open transaction.
    for j in &junk {
        let what = format!("TXU.EXEC {}", esc(&j[..j.len().min(20)]));
        error_text(c.cmd(&[b"TXU.EXEC", j]), &what);
        begin(&mut c);
        queue_bytes(&mut c, &[b"SET", b"exec:k", b"v"]);
        error_text(
            c.cmd(&[b"TXU.EXEC", j]),
            &format!("{what} in a transaction"),
        );
        assert_reply(
            &c.cmd(&[b"EXISTS", b"exec:k"]),
            b":0\r\n",
            &format!("{what} must not run the transaction"),
        );
        // Whatever state it left, ending the transaction works and the server lives.
        let end = c.cmd(&[b"TXU.ROLLBACK"]);
        assert!(
            end == b"+OK\r\n" || end == b"-ERR TXU.ROLLBACK without TXU.BEGIN\r\n",
            "{what}: TXU.ROLLBACK replied {}",
            esc(&end)
        );
        assert_alive(&mut s, &what);
    }

    // TXU.ROLLBACK <junk id> echoes the id only as a clean line.
    for j in &junk {
        let what = format!("TXU.ROLLBACK {}", esc(&j[..j.len().min(20)]));
        let text = error_text(c.cmd(&[b"TXU.ROLLBACK", j]), &what);
        assert!(
            text.starts_with("ERR no retained transaction '"),
            "{what}: {text:?}"
        );
        let text = error_text(c.cmd(&[b"TXU.ROLLBACK", j, b"junk"]), &what);
        assert!(text.starts_with("ERR syntax error: "), "{what}: {text:?}");
        assert_alive(&mut s, &what);
    }
}

#[test]
fn queued_arguments_with_odd_bytes_through_many_command_types() {
    let mut s = Server::start();
    let mut c = s.raw();
    let v = b"\0\r\n\xff";
    begin(&mut c);
    queue_bytes(&mut c, &[b"HSET", b"h\0", v, v]);
    queue_bytes(&mut c, &[b"HGETALL", b"h\0"]);
    queue_bytes(&mut c, &[b"SADD", b"s\r\n", v]);
    queue_bytes(&mut c, &[b"SMEMBERS", b"s\r\n"]);
    queue_bytes(&mut c, &[b"ZADD", b"z\xff", b"1", v]);
    queue_bytes(&mut c, &[b"ZRANGE", b"z\xff", b"0", b"-1"]);
    queue_bytes(&mut c, &[b"XADD", b"x\0", b"1-1", v, v]);
    queue_bytes(&mut c, &[b"XLEN", b"x\0"]);
    let mut want = b"*8\r\n:1\r\n*2\r\n".to_vec();
    want.extend(bulk_bytes(v));
    want.extend(bulk_bytes(v));
    want.extend_from_slice(b":1\r\n*1\r\n");
    want.extend(bulk_bytes(v));
    want.extend_from_slice(b":1\r\n*1\r\n");
    want.extend(bulk_bytes(v));
    want.extend(bulk_bytes(b"1-1"));
    want.extend_from_slice(b":1\r\n");
    assert_reply(
        &c.cmd(&[b"TXU.EXEC"]),
        &want,
        "binary through several types",
    );
    // Runtime errors caused by odd arguments are clean lines too.
    begin(&mut c);
    queue_bytes(&mut c, &[b"SET", b"t", v]);
    queue_bytes(&mut c, &[b"SET", b"k", b"v", b"EX", v]);
    let cause = assert_rolled_back(c.cmd(&[b"TXU.EXEC"]), 2, "SET");
    assert!(cause.starts_with("ERR "), "{cause:?}");
    assert_reply(&c.cmd(&[b"EXISTS", b"t"]), b":0\r\n", "rolled back");
    assert_alive(&mut s, "binary arguments to several types");
}
