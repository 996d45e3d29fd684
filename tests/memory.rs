//! txu gives back the memory it uses: after thousands of transactions — committed, rolled
//! back, with long and short values, many keys and few — `used_memory` is back within a small
//! bound of where it started once the data is flushed. The module's allocator keeps a bounded
//! cache of freed small blocks (under 300 kB, counted in `used_memory`); a leak of even one
//! small block per command would exceed the bound many times over.

mod common;

use common::{encode_command, Server};

/// One pipelined batch of `n` `TXU.RUN`s of ten writes each; every other one rolls back.
fn batch(round: usize, n: usize) -> Vec<u8> {
    let long = "v".repeat(200);
    let mut out = Vec::new();
    for t in 0..n {
        let mut args: Vec<String> = vec!["TXU.RUN".into()];
        for i in 0..10 {
            let key = format!("m:{}:{}", (round * n + t) % 500, i);
            let value = if i % 2 == 0 {
                long.clone()
            } else {
                t.to_string()
            };
            args.extend(["3".into(), "SET".into(), key, value]);
        }
        args.extend([
            "4".into(),
            "HSET".into(),
            format!("m:h:{t}"),
            "f".into(),
            long.clone(),
        ]);
        if t % 2 == 1 {
            // Fails: the transaction rolls back.
            args.extend([
                "4".into(),
                "HINCRBY".into(),
                format!("m:h:{t}"),
                "f".into(),
                "1".into(),
            ]);
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        out.extend(encode_command(&refs));
    }
    out
}

#[test]
fn transactions_give_their_memory_back() {
    let s = Server::start();
    let used = |s: &Server| {
        let r = s.raw_roundtrip(&encode_command(&[b"FLUSHALL"]));
        assert_eq!(r, b"+OK\r\n");
        s.info_u64("memory", "used_memory")
    };
    let n = 500;
    // Warm up: the server's own structures and the module's caches reach their size.
    for round in 0..2 {
        s.raw_roundtrip_n(&batch(round, n), n);
    }
    let before = used(&s);
    for round in 2..12 {
        let replies = s.raw_roundtrip_n(&batch(round, n), n);
        assert!(
            replies.starts_with(b"*11\r\n"),
            "a committed transaction first"
        );
    }
    let after = used(&s);
    let grown = after.saturating_sub(before);
    assert!(
        grown < 512 * 1024,
        "used_memory grew by {grown} bytes over 5,000 transactions ({before} -> {after})"
    );
}
