use super::*;
use crate::undo::entry::Snapshot;
use crate::undo::model::Rng;

const NOW: i64 = 1_700_000_000_000;

fn v(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

fn e_hash(key: &str, field: &str, before: Option<&str>) -> UndoEntry {
    UndoEntry::HashField {
        key: key.into(),
        field: field.into(),
        before: before.map(Into::into),
    }
}

fn e_ttl(key: &str, t: Option<i64>) -> UndoEntry {
    UndoEntry::Expiry {
        key: key.into(),
        expire_at_ms: t,
    }
}

#[test]
fn compaction_keeps_the_earliest_pre_image_per_slot() {
    let mut log = UndoLog::from_entries(vec![
        e_ttl("h", Some(5)),
        e_hash("h", "f", Some("1")),
        e_ttl("h", Some(6)),
        e_hash("h", "f", Some("2")),
        e_hash("h", "g", None),
        UndoEntry::Str {
            key: "s".into(),
            before: None,
        },
        UndoEntry::Str {
            key: "s".into(),
            before: Some(("x".into(), None)),
        },
        UndoEntry::ListPop {
            key: "s".into(),
            left: true,
            count: 1,
        },
    ]);
    assert_eq!(log.compact(), 4);
    assert_eq!(
        log.entries(),
        &[
            e_ttl("h", Some(5)),
            e_hash("h", "f", Some("1")),
            e_hash("h", "g", None),
            UndoEntry::Str {
                key: "s".into(),
                before: None
            },
        ]
    );
    assert_eq!(log.compactions(), 1);
    assert_eq!(log.removed(), 4);
    assert_eq!(log.pushed(), 8);
    assert_eq!(log.since_compaction(), 0);
}

#[test]
fn push_normalizes_expiry_and_covered_keys() {
    let mut log = UndoLog::new();
    assert!(log.push(e_hash("h", "f", None)));
    // Not the key's first entry: its deadline is intermediate.
    assert!(!log.push(e_ttl("h", Some(5))));
    assert!(log.push(UndoEntry::Whole {
        key: "h".into(),
        before: Some(Snapshot {
            payload: vec![1],
            expire_at_ms: Some(9),
        }),
    }));
    assert_eq!(
        log.entries()[1],
        UndoEntry::Whole {
            key: "h".into(),
            before: Some(Snapshot {
                payload: vec![1],
                expire_at_ms: None,
            }),
        }
    );
    // Covered: the full restore undoes anything later.
    assert!(!log.push(e_hash("h", "g", None)));
    assert!(log.push(e_ttl("s", Some(7))));
    assert!(log.push(UndoEntry::Str {
        key: "s".into(),
        before: Some(("v".into(), Some(8))),
    }));
    assert_eq!(
        log.entries()[3],
        UndoEntry::Str {
            key: "s".into(),
            before: Some(("v".into(), None)),
        }
    );
    assert!(log.push(UndoEntry::Rename {
        from: "h".into(),
        to: "t".into(),
    }));
    assert!(!log.covers(b"h"));
    assert!(log.push(e_hash("h", "g", None)));
    assert_eq!(log.len(), 6);
    assert_eq!(log.pushed(), 6);
}

#[test]
fn renames_are_barriers() {
    let mut log = UndoLog::new();
    log.push(UndoEntry::Whole {
        key: "b".into(),
        before: None,
    });
    assert!(log.covers(b"b"));
    log.push(UndoEntry::Rename {
        from: "a".into(),
        to: "b".into(),
    });
    assert!(!log.covers(b"b"));
    assert!(!log.covers(b"a"));
    log.push(e_hash("b", "f", None));
    log.push(e_hash("b", "f", Some("1")));
    log.push(UndoEntry::Rename {
        from: "b".into(),
        to: "a".into(),
    });
    log.push(e_hash("a", "f", None));
    log.push(e_hash("a", "f", Some("2")));
    assert_eq!(log.compact(), 2);
    assert_eq!(log.len(), 5);
    assert!(matches!(log.entries()[4], UndoEntry::HashField { .. }));
}

#[test]
fn a_kind_change_starts_a_new_run() {
    // SADD k x (new), SREM k x (deleted), HSET k f (new hash), HDEL, SADD k x, SADD k y.
    let set = |m: &str, present| UndoEntry::SetMember {
        key: "k".into(),
        member: m.into(),
        present,
    };
    let mut log = UndoLog::from_entries(vec![
        set("x", false),
        e_ttl("k", None),
        set("x", true),
        e_hash("k", "f", None),
        e_ttl("k", None),
        e_hash("k", "f", Some("1")),
        set("x", false),
        e_ttl("k", None),
        set("y", false),
    ]);
    log.compact();
    assert_eq!(
        log.entries(),
        &[
            set("x", false),
            e_ttl("k", None),
            e_hash("k", "f", None),
            set("x", false),
            set("y", false)
        ]
    );
}

#[test]
fn covers_follows_full_restores_and_renames() {
    let mut log = UndoLog::new();
    assert!(!log.covers(b"k"));
    log.push(e_hash("k", "f", None));
    assert!(!log.covers(b"k"));
    log.push(UndoEntry::Str {
        key: "k".into(),
        before: None,
    });
    assert!(log.covers(b"k"));
    log.push(UndoEntry::Rename {
        from: "k".into(),
        to: "z".into(),
    });
    assert!(!log.covers(b"k"));
    log.push(UndoEntry::Whole {
        key: "k".into(),
        before: None,
    });
    assert!(log.covers(b"k"));
    log.truncate(3);
    assert!(!log.covers(b"k"));
    assert_eq!(log.len(), 3);
    assert_eq!(
        log.weight(),
        log.entries().iter().map(UndoEntry::weight).sum::<usize>()
    );
    assert_eq!(log.keys(), vec![b"k".to_vec(), b"z".to_vec()]);
    assert_eq!(log.compensations()[0], v(&["RENAME", "z", "k"]));
}

fn sample_log() -> UndoLog {
    let mut log = UndoLog::new();
    log.push(UndoEntry::Whole {
        key: b"w\0k".to_vec(),
        before: Some(Snapshot {
            payload: (0..=255).collect(),
            expire_at_ms: Some(NOW),
        }),
    });
    log.push(UndoEntry::Str {
        key: "s".into(),
        before: Some(("v".into(), None)),
    });
    log.push(e_hash("h", "f", Some("1")));
    log.push(UndoEntry::SetMember {
        key: "s".into(),
        member: "m".into(),
        present: true,
    });
    log.push(UndoEntry::ZMember {
        key: "z".into(),
        member: "m".into(),
        score: Some(f64::NEG_INFINITY),
    });
    log.push(e_ttl("h", Some(NOW)));
    log.push(UndoEntry::ListPush {
        key: "l".into(),
        left: false,
        elems: vec!["a".into(), "b".into()],
    });
    log.push(UndoEntry::ListPop {
        key: "l".into(),
        left: true,
        count: 300,
    });
    log.push(UndoEntry::ListSet {
        key: "l".into(),
        index: -1,
        value: "x".into(),
    });
    log.push(UndoEntry::Rename {
        from: "a".into(),
        to: "b".into(),
    });
    log.compact();
    log
}

#[test]
fn encoding_round_trips() {
    let log = sample_log();
    let bytes = log.encode();
    assert_eq!(bytes[0], VERSION);
    let back = UndoLog::decode(&bytes).unwrap();
    assert_eq!(back, log);
    assert_eq!(back.weight(), log.weight());
    assert!(back.covers(b"w\0k"));
    assert_eq!(back.compactions(), 1);
    let empty = UndoLog::new();
    assert_eq!(UndoLog::decode(&empty.encode()), Ok(empty));
}

#[test]
fn unknown_versions_are_refused() {
    let mut bytes = sample_log().encode();
    for v in [0u8, 2, 255] {
        bytes[0] = v;
        assert_eq!(UndoLog::decode(&bytes), Err(DecodeError::UnknownVersion(v)));
    }
    assert_eq!(UndoLog::decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn every_truncation_is_refused() {
    let bytes = sample_log().encode();
    for n in 0..bytes.len() {
        assert!(UndoLog::decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(UndoLog::decode(&longer).is_err(), "trailing byte");
}

#[test]
fn malformed_entries_are_refused() {
    let mut log = UndoLog::new();
    log.push(UndoEntry::ListPush {
        key: "l".into(),
        left: true,
        elems: vec![],
    });
    assert!(matches!(
        UndoLog::decode(&log.encode()),
        Err(DecodeError::Corrupt(_))
    ));
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng::new(7);
    let good = sample_log().encode();
    let mut accepted = 0;
    for i in 0..20_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let n = rng.below(64);
            (0..n).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = good.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            b
        };
        if let Ok(log) = UndoLog::decode(&bytes) {
            accepted += 1;
            assert!(log.entries().iter().all(UndoEntry::is_well_formed));
            let _ = log.compensations();
        }
    }
    // Length prefixes claiming far more than the input holds are refused, not allocated.
    let mut huge = vec![VERSION, 0xFD];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(UndoLog::decode(&huge).is_err());
    assert!(accepted < 20_000);
}

#[test]
fn element_level_keys_are_tracked_until_a_rename() {
    let mut log = UndoLog::new();
    log.push(e_ttl("h", Some(5)));
    assert!(!log.has_elements(b"h"), "an expiry alone decides nothing");
    log.push(e_hash("h", "f", Some("1")));
    log.push(UndoEntry::ListPop {
        key: "l".into(),
        left: true,
        count: 1,
    });
    log.push(UndoEntry::Whole {
        key: "w".into(),
        before: None,
    });
    assert!(log.has_elements(b"h") && log.has_elements(b"l"));
    assert!(!log.has_elements(b"w") && log.covers(b"w"));
    // A rename: both names hold other values now.
    log.push(UndoEntry::Rename {
        from: "h".into(),
        to: "l".into(),
    });
    assert!(!log.has_elements(b"h") && !log.has_elements(b"l"));
    // Derived again after truncation, compaction and decoding.
    let mut log = UndoLog::new();
    log.push(e_hash("h", "f", Some("1")));
    log.push(e_hash("h", "f", Some("2")));
    log.push(e_hash("g", "f", None));
    log.compact();
    assert!(log.has_elements(b"h") && log.has_elements(b"g"));
    let decoded = UndoLog::decode(&log.encode()).unwrap();
    assert!(decoded.has_elements(b"h") && decoded.has_elements(b"g"));
    log.truncate(1);
    assert!(log.has_elements(b"h") && !log.has_elements(b"g"));
}

#[test]
fn a_checkpoint_with_only_first_entries_of_keys_keeps_everything_and_the_next_one_still_compacts() {
    let mut log = UndoLog::new();
    for i in 0..50 {
        assert!(log.push(e_hash(&format!("h{i}"), "f", Some("1"))));
    }
    assert_eq!(log.compact(), 0);
    assert_eq!(
        (log.len(), log.compactions(), log.since_compaction()),
        (50, 1, 0)
    );
    // A second write of a field of h0 and of a new field of h1, then a new key.
    assert!(log.push(e_hash("h0", "f", Some("2"))));
    assert!(log.push(e_hash("h1", "g", None)));
    assert!(log.push(e_hash("h50", "f", None)));
    // Decoded in between: the repeats since the checkpoint are found again.
    let mut log = UndoLog::decode(&log.encode()).expect("decodes");
    assert_eq!(log.compact(), 1, "h0's second pre-image of f goes");
    assert_eq!(log.len(), 52);
    assert_eq!(log.compact(), 0, "idempotent");
    // Every survivor is the earliest of its slot.
    assert!(log
        .entries()
        .iter()
        .all(|e| !matches!(e, UndoEntry::HashField { key, before, .. } if key == b"h0" && before.as_deref() == Some(&b"2"[..]))));
}
