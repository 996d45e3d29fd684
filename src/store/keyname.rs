//! Names of txu's hidden keys. Pure: no Redis types.
//!
//! An undo log is stored under `txu:undo:{<tag>}:<txid>`, where `<tag>` is a short string that
//! hashes to the same cluster slot as the transaction's first key, so the log lives on the
//! node (and in the slot) of the data it undoes, whatever characters that key contains.

use std::sync::LazyLock;

const SLOTS: usize = 16384;

/// CRC16-XMODEM, the checksum Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of `key`, honouring a non-empty `{hash tag}`.
/// The cluster slot of `key`, as a slot number.
pub fn slot_of(key: &[u8]) -> u16 {
    u16::try_from(key_slot(key)).unwrap_or(0)
}

pub fn key_slot(key: &[u8]) -> usize {
    let part = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    usize::from(crc16(part)) % SLOTS
}

/// For each slot, the shortest decimal string that hashes to it.
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut tags: Vec<Option<String>> = vec![None; SLOTS];
    let mut missing = SLOTS;
    let mut n: u64 = 0;
    while missing > 0 {
        let s = n.to_string();
        let slot = key_slot(s.as_bytes());
        if let Some(t @ None) = tags.get_mut(slot) {
            *t = Some(s);
            missing -= 1;
        }
        n += 1;
    }
    tags.into_iter().map(Option::unwrap_or_default).collect()
});

/// A hash tag (without braces) for `slot`.
pub fn tag_for_slot(slot: usize) -> &'static str {
    TAGS.get(slot % SLOTS).map_or("0", String::as_str)
}

/// The key of the undo log of `txid`, in the slot of `first_key` (or of the id itself).
pub fn undo_key(txid: &str, first_key: Option<&[u8]>) -> Vec<u8> {
    let slot = key_slot(first_key.unwrap_or(txid.as_bytes()));
    format!("txu:undo:{{{}}}:{txid}", tag_for_slot(slot)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values printed by `CLUSTER KEYSLOT` on a cluster-enabled Redis 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{foo}.x"), 12182);
        assert_eq!(key_slot(b"x{}foo"), 11714);
        assert_eq!(key_slot(b"{}foo"), 9500);
        assert_eq!(key_slot(b"a{b}c"), 3300);
        assert_eq!(
            key_slot(b"a{}{b}"),
            15033,
            "an empty first tag hashes the whole key"
        );
        assert_eq!(key_slot(b"{user1}:balance"), 8106);
        assert_ne!(
            key_slot(b"{}foo"),
            key_slot(b"foo"),
            "an empty tag hashes the whole key"
        );
    }

    #[test]
    fn every_slot_has_a_tag_that_hashes_to_it() {
        for slot in 0..SLOTS {
            assert_eq!(key_slot(tag_for_slot(slot).as_bytes()), slot);
        }
    }

    #[test]
    fn undo_keys_share_the_slot_of_the_data() {
        for k in [&b"foo"[..], b"a}b{c", b"\0\xff", b"{user1}:balance"] {
            let uk = undo_key("1-1", Some(k));
            assert_eq!(key_slot(&uk), key_slot(k), "{uk:?}");
            assert!(uk.starts_with(b"txu:undo:{"));
            assert!(uk.ends_with(b":1-1"));
        }
    }
}
