//! `DUMP` payloads and RDB files taken apart and put back together, for tests that damage them.
//!
//! A `DUMP` payload is the value in RDB encoding (type byte, then the value), the 2-byte RDB
//! version (little-endian) and a CRC64 of everything before it (8 bytes, little-endian). The
//! CRC is Redis' `crc64.c`: the Jones polynomial, reflected, initial value 0, no final xor;
//! Redis, Valkey and every RDB file (its last 8 bytes, unless `rdbchecksum no`) use it.
//!
//! A module value (`RDB_TYPE_MODULE_2`) is the module id (a length-encoded 64-bit number),
//! then each field as an opcode and its data, then the `EOF` opcode; a txu value is one string
//! field holding txu's own encoding (the "txu payload").

use std::ops::Range;

/// Jones polynomial, bit-reflected (Redis `crc64.c`).
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
/// `RDB_TYPE_MODULE_2`.
pub const RDB_TYPE_MODULE_2: u8 = 7;
/// `RDB_MODULE_OPCODE_STRING`.
const OPCODE_STRING: u64 = 5;

/// CRC64 as Redis computes it for `DUMP` payloads and RDB files.
pub fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A `DUMP` payload split into the value body (type byte included) and the RDB version bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Dump {
    pub body: Vec<u8>,
    pub rdb_version: [u8; 2],
}

impl Dump {
    /// Splits `payload`; panics when it is too short or its CRC does not match (it came from a
    /// real server, so anything else is a misunderstanding of the format).
    #[track_caller]
    pub fn parse(payload: &[u8]) -> Dump {
        assert!(
            payload.len() > 10,
            "DUMP payload of {} bytes",
            payload.len()
        );
        let (data, crc) = payload.split_at(payload.len() - 8);
        let want = u64::from_le_bytes(crc.try_into().expect("8 CRC bytes"));
        assert_eq!(crc64(data), want, "CRC64 of a real DUMP payload");
        let (body, version) = data.split_at(data.len() - 2);
        Dump {
            body: body.to_vec(),
            rdb_version: [version[0], version[1]],
        }
    }

    /// The payload with this body, this RDB version and a correct CRC.
    pub fn payload(&self) -> Vec<u8> {
        with_body(&self.body, self.rdb_version)
    }

    /// The payload of `body` in place of this one's (same RDB version, correct CRC).
    pub fn rebuild(&self, body: &[u8]) -> Vec<u8> {
        with_body(body, self.rdb_version)
    }
}

/// A `DUMP` payload of `body` (value in RDB encoding, type byte first) with a correct CRC.
pub fn with_body(body: &[u8], rdb_version: [u8; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    out.extend_from_slice(body);
    out.extend_from_slice(&rdb_version);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// An RDB length at `at` (`rdbLoadLen`): the number and the bytes it takes. `None` for an
/// encoded-string marker (`11xxxxxx`: an integer or LZF string) or input that ends early.
pub fn rdb_len(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *bytes.get(at)?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3f), 1)),
        1 => Some((
            (u64::from(first & 0x3f) << 8) | u64::from(*bytes.get(at + 1)?),
            2,
        )),
        2 if first == 0x80 => {
            let b = bytes.get(at + 1..at + 5)?;
            Some((u64::from(u32::from_be_bytes(b.try_into().ok()?)), 5))
        }
        2 if first == 0x81 => {
            let b = bytes.get(at + 1..at + 9)?;
            Some((u64::from_be_bytes(b.try_into().ok()?), 9))
        }
        _ => None,
    }
}

/// `n` as an RDB length, in the shortest form (`rdbSaveLen`).
pub fn rdb_len_bytes(n: u64) -> Vec<u8> {
    if n < 1 << 6 {
        vec![n as u8]
    } else if n < 1 << 14 {
        vec![0x40 | (n >> 8) as u8, n as u8]
    } else if let Ok(n32) = u32::try_from(n) {
        let mut v = vec![0x80];
        v.extend_from_slice(&n32.to_be_bytes());
        v
    } else {
        let mut v = vec![0x81];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }
}

/// Where the txu payload of a module value sits, in `value` (the bytes after the type byte):
/// the range of its RDB length and the range of its bytes. `None` when `value` is not one
/// uncompressed string field (a `DUMP` taken with `rdbcompression yes` may hold LZF).
pub fn module_string(value: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    let (_module_id, id_len) = rdb_len(value, 0)?;
    let (opcode, op_len) = rdb_len(value, id_len)?;
    if opcode != OPCODE_STRING {
        return None;
    }
    let len_at = id_len + op_len;
    let (n, n_len) = rdb_len(value, len_at)?;
    let start = len_at + n_len;
    let end = start.checked_add(usize::try_from(n).ok()?)?;
    (end < value.len()).then_some((len_at..start, start..end))
}

/// The txu payload inside a module value's `DUMP` body (type byte first), if uncompressed.
pub fn txu_payload(body: &[u8]) -> Option<&[u8]> {
    let value = body.get(1..)?;
    let (_, bytes) = module_string(value)?;
    value.get(bytes)
}

/// An RDB file whose last 8 bytes (the file's CRC64) are recomputed over the rest.
pub fn fix_rdb_crc(file: &mut [u8]) {
    let n = file
        .len()
        .checked_sub(8)
        .expect("an RDB file ends with its CRC");
    let crc = crc64(&file[..n]);
    file[n..].copy_from_slice(&crc.to_le_bytes());
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
