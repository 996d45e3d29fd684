//! Tests of the test harness itself (tests/common). They use no txu command.

mod common;

use common::{encode_command, reply_len, show, wait_replica_synced, RawConn, Server};
use redis::Commands;
use std::time::Duration;

#[test]
fn start_and_stop() {
    let mut s = Server::start_without_module();
    let mut con = s.conn();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    assert!(s.is_running());
    assert_eq!(
        s.info_field("server", "tcp_port"),
        Some(s.port().to_string())
    );
    assert!(s.dir().is_dir());
    let dir = s.dir().to_path_buf();
    s.stop();
    assert!(!s.is_running());
    drop(s);
    if std::env::var_os("TXU_KEEP_DIRS").is_none() {
        assert!(!dir.exists(), "server dir not removed on drop");
    }
}

#[test]
fn parallel_servers_get_distinct_ports() {
    let a = Server::start_without_module();
    let b = Server::start_without_module();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    let _: () = a.conn().set("k", "a").unwrap();
    let v: Option<String> = b.conn().get("k").unwrap();
    assert_eq!(v, None);
}

#[test]
fn module_is_loaded() {
    let s = Server::start();
    let mut con = s.conn();
    let list: redis::Value = redis::cmd("MODULE").arg("LIST").query(&mut con).unwrap();
    let text = format!("{list:?}");
    assert!(
        text.contains("\"txu\"") || text.contains("txu"),
        "MODULE LIST has no txu module: {text}"
    );
    // The same check, byte for byte, without the redis crate's decoding.
    let raw = s.raw_roundtrip(&encode_command(&[b"MODULE", b"LIST"]));
    assert!(
        raw.windows(9).any(|w| w == b"$3\r\ntxu\r\n"),
        "raw MODULE LIST has no txu: {}",
        show(&raw)
    );
}

#[test]
fn restart_keeps_data_with_aof() {
    let mut s = Server::start_without_module_with(&["--appendonly", "yes"]);
    let mut con = s.conn();
    let _: () = con.set("k", "v").unwrap();
    let _: () = con.rpush("l", &[1, 2, 3]).unwrap();
    drop(con);
    let before = s.digest();
    let port = s.port();
    s.restart();
    assert_eq!(
        s.port(),
        port,
        "restart should keep the port when it is free"
    );
    let v: Option<String> = s.conn().get("k").unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    assert_eq!(s.digest(), before);

    // Writes acknowledged before SIGKILL survive too (appendfsync everysec
    // would lose up to a second, so force always).
    s.restart_with(&["--appendfsync", "always"]);
    let _: () = s.conn().set("k2", "v2").unwrap();
    let before = s.digest();
    s.kill9_and_restart();
    assert_eq!(s.digest(), before);
    assert!(s.log().contains("### txu harness: starting"));
}

#[test]
fn restart_with_turns_on_aof() {
    let mut s = Server::start_without_module();
    assert_eq!(
        s.info_field("persistence", "aof_enabled").as_deref(),
        Some("0")
    );
    s.restart_with(&["--appendonly", "yes"]);
    assert_eq!(
        s.info_field("persistence", "aof_enabled").as_deref(),
        Some("1")
    );
    let _: () = s.conn().set("k", "v").unwrap();
    s.restart();
    let v: Option<String> = s.conn().get("k").unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

#[test]
fn replica_syncs() {
    let primary = Server::start_without_module();
    let _: () = primary.conn().set("before", "1").unwrap();
    let replica = primary.start_replica_of();
    let _: () = primary.conn().set("after", "2").unwrap();
    wait_replica_synced(&primary, &replica);
    let v: Option<String> = replica.conn().get("after").unwrap();
    assert_eq!(v.as_deref(), Some("2"));
    let v: Option<String> = replica.conn().get("before").unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    assert_eq!(primary.digest(), replica.digest());
    assert_eq!(
        replica.info_field("replication", "role").as_deref(),
        Some("slave")
    );
}

#[test]
fn replica_with_module_syncs() {
    let primary = Server::start();
    let replica = primary.start_replica_of();
    let _: () = primary.conn().set("k", "v").unwrap();
    wait_replica_synced(&primary, &replica);
    assert_eq!(primary.digest(), replica.digest());
}

#[test]
fn raw_resp2_and_resp3() {
    let s = Server::start_without_module();
    let mut raw = RawConn::connect(s.port());
    assert_eq!(raw.cmd(&[b"SET", b"foo", b"bar"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"foo"]), b"$3\r\nbar\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"missing"]), b"$-1\r\n");
    // Binary values with CRLF and NUL inside come back intact.
    let bin: &[u8] = b"a\r\n\0$5\r\n*1\r\nz";
    assert_eq!(raw.cmd(&[b"SET", b"bin", bin]), b"+OK\r\n");
    let mut want = format!("${}\r\n", bin.len()).into_bytes();
    want.extend_from_slice(bin);
    want.extend_from_slice(b"\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"bin"]), want);

    // Nested arrays: CONFIG GET of two parameters, and a pipeline of three.
    let r = raw.cmd(&[b"CONFIG", b"GET", b"port"]);
    assert_eq!(reply_len(&r), Ok(Some(r.len())));
    let port = s.port().to_string();
    let want = format!("*2\r\n$4\r\nport\r\n${}\r\n{port}\r\n", port.len());
    assert_eq!(show(&r), want);
    let mut pipeline = encode_command(&[b"RPUSH", b"l", b"x", b"y"]);
    pipeline.extend(encode_command(&[b"LRANGE", b"l", b"0", b"-1"]));
    pipeline.extend(b"PING\r\n");
    let r = s.raw_roundtrip(&pipeline);
    assert_eq!(r, b":2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n+PONG\r\n");
    // MULTI/EXEC gives an array holding an array.
    raw.cmd(&[b"MULTI"]);
    raw.cmd(&[b"LRANGE", b"l", b"0", b"-1"]);
    raw.cmd(&[b"GET", b"missing"]);
    let r = raw.cmd(&[b"EXEC"]);
    assert_eq!(r, b"*2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n$-1\r\n");
    assert!(raw.pending().is_empty());

    // RESP3.
    let hello = raw.hello3();
    assert_eq!(reply_len(&hello), Ok(Some(hello.len())));
    assert_eq!(raw.cmd(&[b"GET", b"missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"foo"]), b"$3\r\nbar\r\n");
    let _ = raw.cmd(&[b"HSET", b"h", b"f", b"v"]);
    assert_eq!(
        raw.cmd(&[b"HGETALL", b"h"]),
        b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    let _ = raw.cmd(&[b"ZADD", b"z", b"1.5", b"m"]);
    assert_eq!(raw.cmd(&[b"ZSCORE", b"z", b"m"]), b",1.5\r\n");
    let r = raw.cmd(&[b"CONFIG", b"GET", b"port"]);
    assert_eq!(r.first(), Some(&b'%'));
    // Nothing more is pending, and waiting briefly yields nothing.
    assert!(raw.try_read_reply(Duration::from_millis(50)).is_none());
}

#[test]
fn reply_parser_handles_every_type() {
    let cases: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR x\r\n",
        b":-12\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"_\r\n",
        b",-inf\r\n",
        b"#t\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
        b"!5\r\nERR x\r\n",
        b"=7\r\ntxt:a\r\n\r\n",
        b"~2\r\n:1\r\n+a\r\n",
        b">2\r\n$7\r\nmessage\r\n*1\r\n_\r\n",
        b"%2\r\n+a\r\n*2\r\n:1\r\n%1\r\n+k\r\n~0\r\n+b\r\n_\r\n",
        b"|1\r\n+ttl\r\n:3\r\n*1\r\n$1\r\nx\r\n",
        b"*3\r\n*1\r\n*1\r\n$2\r\n\r\n\r\n$-1\r\n:0\r\n",
    ];
    for c in cases {
        assert_eq!(reply_len(c), Ok(Some(c.len())), "reply {:?}", show(c));
        // Every proper prefix is incomplete, never an error or a wrong length.
        for cut in 0..c.len() {
            assert_eq!(
                reply_len(&c[..cut]),
                Ok(None),
                "prefix {:?}",
                show(&c[..cut])
            );
        }
        // Trailing bytes of the next reply are not counted.
        let mut two = c.to_vec();
        two.extend_from_slice(b"+NEXT\r\n");
        assert_eq!(reply_len(&two), Ok(Some(c.len())));
    }
    assert!(reply_len(b"?x\r\n").is_err());
    assert!(reply_len(b"$3\r\nabcd\r\n").is_err());
}

#[test]
#[should_panic(expected = "failed to start")]
fn bad_config_panics_with_log() {
    let _s = Server::start_without_module_with(&["--no-such-option", "1"]);
}

#[test]
fn restart_moves_to_a_new_port_when_the_old_one_is_taken() {
    let mut s = Server::start_without_module_with(&["--appendonly", "yes"]);
    let _: () = s.conn().set("k", "v").unwrap();
    let old = s.port();
    s.stop();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", old)).unwrap();
    s.start_again();
    assert_ne!(s.port(), old);
    let v: Option<String> = s.conn().get("k").unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    drop(squatter);
}
