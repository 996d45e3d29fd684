//! Bytes of pre-images per write, by type.

use super::push_txu_queue;
use super::UNDO_COUNTERS;
use crate::client::{check_reply, connect, info_delta, info_u64, Commands, Expect};
use crate::measure::Ctx;
use crate::report::{Outcome, Row};
use crate::resp::{bulk_body, esc, push_command};
use std::time::Instant;

/// Bytes of pre-images per write, by type. For each type, 100 keys of
/// 1,000 elements (a 100-byte value for strings), one transaction writing each key once.
/// `ratio` = pre-image bytes per write / (`DUMP` size + name length of the key): 1.00 is a
/// whole-key copy.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    const KEYS: usize = 100;
    const ELEMENTS: usize = 1000;
    struct Kind {
        name: &'static str,
        what: &'static str,
        /// Commands creating key `k`.
        build: fn(&[u8], &mut Vec<u8>) -> usize,
        /// The write of the measured transaction.
        write: fn(&[u8]) -> Vec<Vec<u8>>,
    }
    fn elements(prefix: &str) -> Vec<Vec<u8>> {
        (0..ELEMENTS)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect()
    }
    /// `len` printable bytes that do not compress (DUMP compresses repetitive strings).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'!' + (x % 94) as u8
            })
            .collect()
    }
    fn with_key(cmd: &[u8], key: &[u8], rest: &[Vec<u8>], out: &mut Vec<u8>) -> usize {
        let mut args: Vec<&[u8]> = vec![cmd, key];
        args.extend(rest.iter().map(Vec::as_slice));
        push_command(out, &args);
        1
    }
    let kinds = [
        Kind {
            name: "string",
            what: "SET, 100-byte value",
            build: |k, out| with_key(b"SET", k, &[noise(100, 1)], out),
            write: |k| vec![b"SET".to_vec(), k.to_vec(), noise(100, 2)],
        },
        Kind {
            name: "hash",
            what: "HSET f500 of 1,000 fields",
            build: |k, out| {
                let pairs: Vec<Vec<u8>> = elements("f")
                    .into_iter()
                    .zip(elements("value-"))
                    .flat_map(|(f, v)| [f, v])
                    .collect();
                with_key(b"HSET", k, &pairs, out)
            },
            write: |k| {
                vec![
                    b"HSET".to_vec(),
                    k.to_vec(),
                    b"f500".to_vec(),
                    b"new".to_vec(),
                ]
            },
        },
        Kind {
            name: "set",
            what: "SADD to 1,000 members",
            build: |k, out| with_key(b"SADD", k, &elements("member-"), out),
            write: |k| vec![b"SADD".to_vec(), k.to_vec(), b"new-member".to_vec()],
        },
        Kind {
            name: "zset",
            what: "ZADD to 1,000 members",
            build: |k, out| {
                let pairs: Vec<Vec<u8>> = elements("member-")
                    .into_iter()
                    .enumerate()
                    .flat_map(|(i, m)| [i.to_string().into_bytes(), m])
                    .collect();
                with_key(b"ZADD", k, &pairs, out)
            },
            write: |k| {
                vec![
                    b"ZADD".to_vec(),
                    k.to_vec(),
                    b"5000".to_vec(),
                    b"new-member".to_vec(),
                ]
            },
        },
        Kind {
            name: "list",
            what: "LPUSH to 1,000 elements",
            build: |k, out| with_key(b"RPUSH", k, &elements("element-"), out),
            write: |k| vec![b"LPUSH".to_vec(), k.to_vec(), b"new".to_vec()],
        },
        Kind {
            name: "stream",
            what: "XADD to 1,000 entries",
            build: |k, out| {
                for i in 0..ELEMENTS {
                    push_command(
                        out,
                        &[b"XADD", k, b"*", b"field", format!("value-{i}").as_bytes()],
                    );
                }
                ELEMENTS
            },
            write: |k| {
                vec![
                    b"XADD".to_vec(),
                    k.to_vec(),
                    b"*".to_vec(),
                    b"field".to_vec(),
                    b"new".to_vec(),
                ]
            },
        },
    ];
    let mut con = connect(ctx.server.port())?;
    let mut out = Outcome::new("preimage-bytes", "pre-image bytes per write".into(), 1);
    let mut details = Vec::new();
    for kind in &kinds {
        let key = |i: usize| format!("pb:{}:{i}", kind.name).into_bytes();
        for i in 0..KEYS {
            let mut req = Vec::new();
            let n = (kind.build)(&key(i), &mut req);
            con.write(&req)?;
            for _ in 0..n {
                let r = con.next_reply()?;
                let reply = con.reply(r);
                if reply.starts_with(b"-") {
                    return Err(format!("building {}: {:?}", kind.name, esc(reply)));
                }
            }
        }
        let dump = con.call(&[b"DUMP", &key(0)])?;
        let dump_len = bulk_body(&dump).map(<[u8]>::len).unwrap_or(0) as f64;
        // A whole-key pre-image: the key's name and its serialization.
        let names = (0..KEYS).map(|i| key(i).len()).sum::<usize>() as f64 / KEYS as f64;
        let whole = dump_len + names;
        let writes: Vec<Vec<Vec<u8>>> = (0..KEYS).map(|i| (kind.write)(&key(i))).collect();
        let mut body = Vec::new();
        push_txu_queue(&mut body, &[], &writes);
        let before = con.info("txu")?;
        con.pipeline(&body, &[Expect::Bulk, Expect::queued()], KEYS + 1)?;
        let t = Instant::now();
        let r = con.call(&[b"TXU.EXEC"])?;
        let exec_ms = t.elapsed().as_secs_f64() * 1e3;
        check_reply(
            &Expect::ArrayNoErrors(KEYS),
            &r,
            &format!("TXU.EXEC ({})", kind.name),
        )?;
        let after = con.info("txu")?;
        let delta = |f: &str| -> Result<f64, String> {
            Ok(info_u64(&after, f)? as f64 - info_u64(&before, f)? as f64)
        };
        let per_write = delta("txu_preimage_bytes")? / KEYS as f64;
        let counted = UNDO_COUNTERS[..4]
            .iter()
            .filter_map(|f| {
                let d = info_delta(&before, &after, f)?;
                Some(format!("{} +{d}", f.strip_prefix("txu_").unwrap_or(f)))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut row = Row::derived(kind.name, per_write, "B/write");
        row.ratio = Some(per_write / whole);
        out.rows.push(row);
        details.push(format!(
            "{} ({}): DUMP {dump_len} B, {counted}, EXEC {exec_ms:.2} ms",
            kind.name, kind.what
        ));
    }
    out.notes.push(
        "pre-image bytes per write = txu_preimage_bytes delta / 100 (one transaction, 100 \
         writes on distinct keys); ratio = that / (DUMP size + name length) of the key before \
         the write: 1.00 = a whole-key copy"
            .into(),
    );
    out.notes.extend(details);
    Ok(out)
}
