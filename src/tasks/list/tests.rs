use super::*;
use crate::tasks::backoff::SplitMix64;
use std::collections::HashSet;

pub(super) fn task(id: &str, keys: &[&str]) -> Task {
    Task {
        id: id.to_string(),
        db: 0,
        user: b"default".to_vec(),
        commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
        keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        created_ms: 1000,
        attempts: 1,
        max_attempts: 5,
        next_attempt_ms: 0,
        last_error: "OOM command not allowed".to_string(),
        last_attempt_ms: None,
    }
}

fn task_at(id: &str, keys: &[&str], at: i64) -> Task {
    Task {
        next_attempt_ms: at,
        ..task(id, keys)
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn keys(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|k| k.as_bytes().to_vec()).collect()
}

impl TaskList {
    /// Recomputes every index from the tasks and compares.
    fn check(&self) {
        let mut by_key: HashMap<Vec<u8>, BTreeSet<u64>> = HashMap::new();
        for (&seq, t) in &self.pending {
            assert_eq!(self.ids.get(&t.id), Some(&Loc::Pending(seq)));
            for k in &t.keys {
                by_key.entry(k.clone()).or_default().insert(seq);
            }
        }
        for (&seq, t) in &self.dead {
            assert_eq!(self.ids.get(&t.id), Some(&Loc::Dead(seq)));
        }
        assert_eq!(self.ids.len(), self.pending.len() + self.dead.len());
        assert_eq!(by_key, self.by_key);
        let heads: BTreeSet<u64> = self
            .pending
            .iter()
            .filter(|(s, t)| self.is_head(**s, t))
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(heads, self.heads);
        let by_time: BTreeSet<(i64, u64)> = heads
            .iter()
            .map(|s| (self.pending[s].next_attempt_ms, *s))
            .collect();
        assert_eq!(by_time, self.heads_by_time);
        let created: BTreeSet<(i64, u64)> = self
            .pending
            .iter()
            .map(|(s, t)| (t.created_ms, *s))
            .collect();
        assert_eq!(created, self.by_created);
        assert_eq!(self.done.len(), self.done_set.len());
        let mut groups: BTreeMap<u16, usize> = BTreeMap::new();
        if let Some(f) = self.group_of {
            for t in self.all() {
                *groups.entry(f(t)).or_default() += 1;
            }
        }
        assert_eq!(groups, self.groups, "group counts");
        assert!(self.done.len() <= DONE_MAX);
        assert!(self.dead.len() <= self.dead_max);
    }

    /// The obvious O(n) definition of `due` (exact when the list is small).
    fn due_naive(&self, now: i64, budget: usize) -> Vec<String> {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut out = Vec::new();
        for t in self.pending.values() {
            let free = t.keys.iter().all(|k| !seen.contains(k.as_slice()));
            if free && t.next_attempt_ms <= now && out.len() < budget {
                out.push(t.id.clone());
            }
            seen.extend(t.keys.iter().map(Vec::as_slice));
        }
        out
    }
}

#[test]
fn order_per_key_is_preserved() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    l.push(task("b", &["x", "y"]));
    l.push(task("c", &["y"]));
    l.check();
    assert_eq!(l.due(0, 10), ids(&["a"]));
    l.succeeded("a");
    assert_eq!(l.due(0, 10), ids(&["b"]));
    l.succeeded("b");
    assert_eq!(l.due(0, 10), ids(&["c"]));
    l.succeeded("c");
    assert!(l.due(0, 10).is_empty());
    l.check();
}

#[test]
fn a_not_yet_due_task_blocks_its_keys_only() {
    let mut l = TaskList::new();
    l.push(task_at("a", &["x"], 500));
    l.push(task_at("b", &["x"], 0));
    l.push(task_at("c", &["z"], 0));
    l.push(task_at("d", &[], 0));
    assert_eq!(l.due(100, 10), ids(&["c", "d"]));
    assert_eq!(l.due(500, 10), ids(&["a", "c", "d"]));
    l.check();
}

#[test]
fn budget_limits_and_oldest_come_first() {
    let mut l = TaskList::new();
    for i in 0..10 {
        l.push(task(&format!("t{i}"), &[&format!("k{i}")]));
    }
    assert_eq!(l.due(0, 3), ids(&["t0", "t1", "t2"]));
    assert!(l.due(0, 0).is_empty());
    assert_eq!(l.due(0, 100).len(), 10);
}

#[test]
fn blocking_key_names_the_first_pending_task() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    l.push(task("b", &["y", "z"]));
    assert_eq!(l.blocking_key(&keys(&["q"])), None);
    assert_eq!(
        l.blocking_key(&keys(&["z", "x"])),
        Some(("a", b"x".as_slice()))
    );
    assert_eq!(l.blocking_key(&keys(&["z"])), Some(("b", b"z".as_slice())));
    // Dead tasks block nothing.
    l.failed("a", "WRONGTYPE".into(), ErrorClass::Permanent, 0, 0);
    assert_eq!(l.blocking_key(&keys(&["x"])), None);
    assert_eq!(l.blocking_key(&[]), None);
}

#[test]
fn transient_failures_back_off_until_attempts_run_out() {
    let mut l = TaskList::new();
    let mut t = task("a", &["x"]);
    t.max_attempts = 3;
    l.push(t);
    l.push(task("b", &["x"]));
    // Run 2 fails: 2 < 3, stays pending.
    assert_eq!(
        l.failed("a", "OOM 2".into(), ErrorClass::Transient, 1000, 250),
        Some(State::Pending)
    );
    assert_eq!(
        l.status("a"),
        Status::Pending {
            attempts: 2,
            next_attempt_ms: 1250,
            last_error: "OOM 2".into()
        }
    );
    // Not due yet, and b waits behind it.
    assert!(l.due(1249, 10).is_empty());
    assert_eq!(l.due(1250, 10), ids(&["a"]));
    l.check();
    // Run 3 fails: attempts used up.
    assert_eq!(
        l.failed("a", "OOM 3".into(), ErrorClass::Transient, 2000, 250),
        Some(State::Dead)
    );
    assert_eq!(
        l.status("a"),
        Status::Dead {
            attempts: 3,
            last_error: "OOM 3".into()
        }
    );
    assert_eq!(l.due(0, 10), ids(&["b"]));
    assert_eq!(l.pending_len(), 1);
    assert_eq!(l.dead_len(), 1);
    // A dead task cannot fail or succeed again.
    assert_eq!(l.failed("a", "x".into(), ErrorClass::Transient, 0, 0), None);
    assert_eq!(l.succeeded("a"), None);
    l.check();
}

#[test]
fn permanent_failure_goes_dead_at_once() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    assert_eq!(
        l.failed("a", "WRONGTYPE bad".into(), ErrorClass::Permanent, 5, 5),
        Some(State::Dead)
    );
    assert_eq!(
        l.get("a").map(|(t, s)| (t.attempts, s)),
        Some((2, State::Dead))
    );
    assert_eq!(
        l.failed("zz", "x".into(), ErrorClass::Permanent, 0, 0),
        None
    );
}

#[test]
fn max_attempts_zero_or_one_means_no_more_retries() {
    let mut l = TaskList::new();
    for (id, max) in [("a", 0), ("b", 1)] {
        let mut t = task(id, &[]);
        t.max_attempts = max;
        t.attempts = 0;
        l.push(t);
        assert_eq!(
            l.failed(id, "OOM".into(), ErrorClass::Transient, 0, 10),
            Some(State::Dead)
        );
    }
}

#[test]
fn huge_delay_saturates() {
    let mut l = TaskList::new();
    l.push(task("a", &[]));
    l.failed(
        "a",
        "OOM".into(),
        ErrorClass::Transient,
        i64::MAX - 5,
        u64::MAX,
    );
    assert_eq!(l.get("a").map(|(t, _)| t.next_attempt_ms), Some(i64::MAX));
    l.check();
}

#[test]
fn dead_list_is_bounded_oldest_fall_off() {
    let mut l = TaskList::new();
    l.set_dead_max(3);
    for i in 0..5 {
        let id = format!("t{i}");
        l.push(task(&id, &[]));
        l.failed(&id, format!("ERR {i}"), ErrorClass::Permanent, 0, 0);
    }
    let dead: Vec<&str> = l.dead().map(|t| t.id.as_str()).collect();
    assert_eq!(dead, ["t2", "t3", "t4"]);
    assert_eq!(l.dropped_by_bound(), 2);
    assert_eq!(l.status("t0"), Status::Unknown);
    l.set_dead_max(1);
    assert_eq!(l.dead().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t4"]);
    assert_eq!(l.dropped_by_bound(), 4);
    l.set_dead_max(0);
    assert_eq!(l.dead_len(), 0);
    assert_eq!(l.dropped_by_bound(), 5);
    l.check();
}

#[test]
fn retry_of_dead_appends_at_tail_and_of_pending_keeps_place() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    l.push(task("b", &["x"]));
    l.failed("a", "WRONGTYPE".into(), ErrorClass::Permanent, 0, 0);
    assert!(l.retry("a", 777));
    assert_eq!(
        l.pending().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(
        l.status("a"),
        Status::Pending {
            attempts: 0,
            next_attempt_ms: 777,
            last_error: "WRONGTYPE".into()
        }
    );
    assert_eq!(l.due(1000, 10), ids(&["b"]));
    // A pending task in backoff: retry makes it due now, same place.
    l.failed("b", "OOM".into(), ErrorClass::Transient, 0, 1_000_000);
    assert!(l.due(1000, 10).is_empty());
    assert!(l.retry("b", 1000));
    assert_eq!(l.get("b").map(|(t, _)| t.attempts), Some(0));
    assert_eq!(l.due(1000, 10), ids(&["b"]));
    assert!(!l.retry("nope", 0));
    l.check();
}

#[test]
fn drop_forgets_pending_and_dead_and_unblocks() {
    let mut l = TaskList::new();
    l.push(task_at("a", &["x"], 1_000_000));
    l.push(task("b", &["x"]));
    l.push(task("c", &[]));
    l.failed("c", "ERR".into(), ErrorClass::Permanent, 0, 0);
    assert!(l.due(0, 10).is_empty());
    assert!(l.drop_task("a"));
    assert_eq!(l.due(0, 10), ids(&["b"]));
    assert!(l.drop_task("c"));
    assert!(!l.drop_task("c"));
    assert_eq!(l.status("a"), Status::Unknown);
    assert_eq!(l.status("c"), Status::Unknown);
    assert_eq!(l.dead_len(), 0);
    l.check();
}

#[test]
fn status_done_is_remembered_and_bounded() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    assert!(matches!(l.status("a"), Status::Pending { .. }));
    let t = l.succeeded("a");
    assert_eq!(t.map(|t| t.id), Some("a".to_string()));
    assert_eq!(l.status("a"), Status::Done);
    assert_eq!(l.status("never"), Status::Unknown);
    for i in 0..DONE_MAX {
        let id = format!("d{i}");
        l.push(task(&id, &[]));
        l.succeeded(&id);
    }
    assert_eq!(l.status("a"), Status::Unknown);
    assert_eq!(l.status("d0"), Status::Done);
    assert_eq!(l.status(&format!("d{}", DONE_MAX - 1)), Status::Done);
    // Pushing a done id again makes it pending.
    l.push(task("d5", &[]));
    assert!(matches!(l.status("d5"), Status::Pending { .. }));
    l.check();
}

#[test]
fn duplicate_push_is_ignored() {
    let mut l = TaskList::new();
    l.push(task("a", &["x"]));
    let mut again = task("a", &["y"]);
    again.attempts = 9;
    l.push(again);
    assert_eq!(l.pending_len(), 1);
    assert_eq!(l.get("a").map(|(t, _)| t.attempts), Some(1));
    assert!(l.contains("a"));
    l.check();
}

#[test]
fn oldest_pending_created() {
    let mut l = TaskList::new();
    assert_eq!(l.oldest_pending_created_ms(), None);
    for (id, c) in [("a", 50), ("b", 10), ("c", 30)] {
        l.push(Task {
            created_ms: c,
            ..task(id, &[])
        });
    }
    assert_eq!(l.oldest_pending_created_ms(), Some(10));
    l.succeeded("b");
    assert_eq!(l.oldest_pending_created_ms(), Some(30));
    l.clear();
    assert_eq!(l.oldest_pending_created_ms(), None);
    assert_eq!(l.pending_len(), 0);
    l.check();
}

#[test]
fn duplicate_keys_in_one_task() {
    let mut l = TaskList::new();
    l.push(task("a", &["x", "x"]));
    l.push(task("b", &["x"]));
    l.check();
    assert_eq!(l.due(0, 10), ids(&["a"]));
    l.succeeded("a");
    l.check();
    assert_eq!(l.due(0, 10), ids(&["b"]));
}

fn big_list(n: usize) -> TaskList {
    let mut l = TaskList::new();
    for i in 0..n {
        let k = format!("key:{}", i % 1000);
        l.push(Task {
            created_ms: i as i64,
            commands: vec![
                vec![b"INCR".to_vec(), k.clone().into_bytes()],
                vec![
                    b"SET".to_vec(),
                    format!("other:{i}").into_bytes(),
                    vec![0, 255, 13, 10],
                ],
            ],
            ..task(
                &format!("{}-{i}", 1_795_333_235_927u64 + i as u64),
                &[&k, &format!("other:{i}")],
            )
        });
    }
    l
}

#[test]
fn encode_decode_round_trip_100k() {
    let mut l = big_list(100_000);
    for i in 0..10 {
        let id = format!("{}-{i}", 1_795_333_235_927u64 + i as u64);
        l.failed(&id, "WRONGTYPE x".into(), ErrorClass::Permanent, 0, 0);
    }
    let id = format!("{}-{}", 1_795_333_235_927u64 + 10, 10);
    l.succeeded(&id);
    l.set_dead_max(7);
    let start = std::time::Instant::now();
    let bytes = l.encode();
    let encoded = start.elapsed();
    assert_eq!(bytes[0], VERSION);
    let start = std::time::Instant::now();
    let d = match TaskList::decode(&bytes) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    eprintln!(
        "100k tasks: {} bytes, encode {encoded:?}, decode {:?}",
        bytes.len(),
        start.elapsed()
    );
    assert!(l.pending().eq(d.pending()));
    assert!(l.dead().eq(d.dead()));
    assert_eq!(d.pending_len(), 100_000 - 11);
    assert_eq!(d.dead_len(), 7);
    assert_eq!(d.dropped_by_bound(), 3);
    assert_eq!(d.dead_max(), 7);
    assert_eq!(d.status(&id), Status::Done);
    assert_eq!(d.due(0, 100), l.due(0, 100));
    assert_eq!(d.encode(), bytes);
    d.check();
}

#[test]
fn empty_round_trip() {
    let l = TaskList::new();
    let d = TaskList::decode(&l.encode());
    assert!(d.is_ok_and(|d| d.pending_len() == 0 && d.dead_max() == DEFAULT_DEAD_MAX));
}

#[test]
fn truncation_and_corruption_never_panic() {
    // Small enough that every prefix and every byte position can be tried.
    let mut l = big_list(12);
    l.failed("1795333235927-0", "ERR".into(), ErrorClass::Permanent, 0, 0);
    l.succeeded("1795333235928-1");
    let bytes = l.encode();
    assert!(TaskList::decode(&bytes).is_ok());
    assert_eq!(TaskList::decode(&[]).err(), Some(DecodeError::Empty));
    assert_eq!(
        TaskList::decode(&[VERSION + 1, 0, 0]).err(),
        Some(DecodeError::UnknownVersion(VERSION + 1))
    );
    assert!(TaskList::decode(&[VERSION]).is_err());
    for n in 0..bytes.len() {
        assert!(TaskList::decode(&bytes[..n]).is_err(), "prefix {n}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(TaskList::decode(&longer).is_err());
    // Flip bytes everywhere (every position, a few patterns); must not panic. Length
    // prefixes set to huge values must fail without allocating them.
    let mut rng = SplitMix64::new(99);
    for i in 1..bytes.len() {
        for pattern in [0xffu8, 0x80, 0x01, (rng.next_u64() & 0xff) as u8] {
            let mut b = bytes.clone();
            b[i] ^= pattern;
            let _ = TaskList::decode(&b);
        }
    }
    for _ in 0..2000 {
        let n = (rng.next_u64() % 300) as usize;
        let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        let _ = TaskList::decode(&junk);
        let mut v = vec![VERSION];
        v.extend(&junk);
        let _ = TaskList::decode(&v);
    }
    let mut huge = vec![VERSION];
    huge.extend(u64::MAX.to_le_bytes());
    assert!(TaskList::decode(&huge).is_err());
    // A large payload cut at random places.
    let big = big_list(20_000).encode();
    for _ in 0..20 {
        let n = (rng.next_u64() % big.len() as u64) as usize;
        assert!(TaskList::decode(&big[..n]).is_err());
    }
}

#[test]
fn duplicate_ids_in_a_payload_are_corrupt() {
    let a = task("a", &[]);
    // pending, dead, done, dead bound, dropped by bound (the layout of `encoding::Snapshot`).
    let snap = (vec![&a], vec![&a], Vec::<String>::new(), 5u64, 0u64);
    let bytes = crate::codec::encode(VERSION, &snap);
    assert!(matches!(
        TaskList::decode(&bytes),
        Err(DecodeError::Corrupt(_))
    ));
}

#[test]
fn due_on_100k_examines_a_bounded_number_of_entries() {
    let budget = 100;
    let bound = 2 * (SCAN_FACTOR * budget + SCAN_SLACK);
    // 100,000 tasks over 1,000 keys (+ one private key each): 1,000 heads.
    let l = big_list(100_000);
    let (d, examined) = l.due_examined(0, budget);
    assert_eq!(d.len(), budget);
    assert!(examined <= bound, "{examined}");

    // All on distinct keys, all due: exactly `budget` examined.
    let mut l = TaskList::new();
    for i in 0..100_000 {
        l.push(task(&format!("t{i}"), &[&format!("k{i}")]));
    }
    let (d, examined) = l.due_examined(0, budget);
    assert_eq!(d.len(), budget);
    assert_eq!(d.first().map(String::as_str), Some("t0"));
    assert_eq!(examined, budget);

    // The first half not due for a long time: later unrelated tasks still run, and the
    // scan stays bounded.
    let mut l = TaskList::new();
    for i in 0..100_000 {
        let at = if i < 50_000 { 1_000_000 } else { i as i64 };
        l.push(task_at(&format!("t{i}"), &[&format!("k{i}")], at));
    }
    let start = std::time::Instant::now();
    let (d, examined) = l.due_examined(60_000, budget);
    let took = start.elapsed();
    assert_eq!(d.len(), budget);
    assert_eq!(d.first().map(String::as_str), Some("t50000"));
    assert!(examined <= bound, "{examined}");
    eprintln!("due() on 100k with a blocked head region: {took:?}, {examined} examined");

    // Nothing due at all: still bounded.
    let (d, examined) = l.due_examined(0, budget);
    assert!(d.is_empty());
    assert!(examined <= bound, "{examined}");

    // All on one key: one head.
    let mut l = TaskList::new();
    for i in 0..100_000 {
        l.push(task(&format!("t{i}"), &["hot"]));
    }
    let (d, examined) = l.due_examined(0, budget);
    assert_eq!(d, ids(&["t0"]));
    assert_eq!(examined, 1);
}

#[test]
fn draining_100k_keeps_each_tick_bounded() {
    let budget = 100;
    let bound = 2 * (SCAN_FACTOR * budget + SCAN_SLACK);
    let mut l = big_list(100_000);
    let mut ran = 0usize;
    let mut max_examined = 0;
    let mut slowest_tick = std::time::Duration::ZERO;
    let mut last_per_key: HashMap<Vec<u8>, i64> = HashMap::new();
    while l.pending_len() > 0 {
        let tick = std::time::Instant::now();
        let (d, examined) = l.due_examined(0, budget);
        assert!(!d.is_empty());
        max_examined = max_examined.max(examined);
        let done: Vec<Task> = d.iter().filter_map(|id| l.succeeded(id)).collect();
        slowest_tick = slowest_tick.max(tick.elapsed());
        assert_eq!(done.len(), d.len());
        for t in done {
            for k in &t.keys {
                let prev = last_per_key.insert(k.clone(), t.created_ms);
                assert!(prev.is_none_or(|p| p < t.created_ms));
            }
            ran += 1;
        }
    }
    eprintln!("drain 100k: slowest tick (due + {budget} succeeded) {slowest_tick:?}");
    assert_eq!(ran, 100_000);
    assert!(max_examined <= bound, "{max_examined}");
}

/// Random operations on small lists, checked against the naive definition of `due` and
/// a full recomputation of the indexes after every step.
/// A grouping for the tests: the last byte of a task's first key (0 without keys).
fn group_by_first_key(t: &Task) -> u16 {
    t.keys
        .first()
        .and_then(|k| k.last())
        .map_or(0, |&b| u16::from(b))
}

#[test]
fn random_operations_match_the_naive_model() {
    let mut rng = SplitMix64::new(2024);
    for round in 0..200 {
        let mut l = TaskList::new();
        // Half the rounds group the tasks (as the module does by cluster slot).
        if round % 2 == 0 {
            l.set_grouping(group_by_first_key);
        }
        l.set_dead_max((rng.next_u64() % 6) as usize);
        let mut next_id = 0;
        for _ in 0..150 {
            let now = (rng.next_u64() % 100) as i64;
            let pick = |l: &TaskList, r: u64| -> Option<String> {
                let all: Vec<&Task> = l.pending().chain(l.dead()).collect();
                if all.is_empty() {
                    None
                } else {
                    all.get(r as usize % all.len()).map(|t| t.id.clone())
                }
            };
            match rng.next_u64() % 8 {
                0..=2 => {
                    let nk = rng.next_u64() % 3;
                    let ks: Vec<String> = (0..nk)
                        .map(|_| format!("k{}", rng.next_u64() % 5))
                        .collect();
                    let kr: Vec<&str> = ks.iter().map(String::as_str).collect();
                    let mut t = task_at(&format!("t{next_id}"), &kr, (rng.next_u64() % 100) as i64);
                    t.created_ms = (rng.next_u64() % 50) as i64;
                    t.max_attempts = (rng.next_u64() % 4) as u32;
                    next_id += 1;
                    l.push(t);
                }
                3 => {
                    if let Some(id) = l.due(now, 3).first() {
                        l.succeeded(id);
                    }
                }
                4 => {
                    if let Some(id) = pick(&l, rng.next_u64()) {
                        let class = if rng.next_u64().is_multiple_of(2) {
                            ErrorClass::Transient
                        } else {
                            ErrorClass::Permanent
                        };
                        l.failed(&id, "E".into(), class, now, rng.next_u64() % 50);
                    }
                }
                5 => {
                    if let Some(id) = pick(&l, rng.next_u64()) {
                        l.retry(&id, now);
                    }
                }
                6 => {
                    if let Some(id) = pick(&l, rng.next_u64()) {
                        l.drop_task(&id);
                    }
                }
                _ => l.set_dead_max((rng.next_u64() % 6) as usize),
            }
            l.check();
            for budget in [1, 2, 5, 100] {
                assert_eq!(
                    l.due(now, budget),
                    l.due_naive(now, budget),
                    "round {round}"
                );
            }
            let min_created = l.pending().map(|t| t.created_ms).min();
            assert_eq!(l.oldest_pending_created_ms(), min_created);
            for k in ["k0", "k1", "k4"] {
                let want = l
                    .pending()
                    .find(|t| t.keys.iter().any(|x| x == k.as_bytes()))
                    .map(|t| t.id.as_str());
                let got = l.blocking_key(&keys(&[k])).map(|(id, _)| id);
                assert_eq!(got, want);
            }
        }
        let d = TaskList::decode(&l.encode());
        assert!(d.is_ok_and(|d| {
            d.check();
            d.pending().eq(l.pending()) && d.dead().eq(l.dead()) && d.due(50, 5) == l.due(50, 5)
        }));
    }
}

#[test]
fn due_tasks_borrows_exactly_the_tasks_due_names() {
    let mut rng = SplitMix64::new(7);
    let mut l = TaskList::new();
    for i in 0..200u64 {
        let a = format!("k{}", rng.next_u64() % 40);
        let b = format!("k{}", rng.next_u64() % 40);
        let mut t = task(&format!("t{i}"), &[&a, &b]);
        t.next_attempt_ms = i64::try_from(rng.next_u64() % 100).unwrap_or(0);
        l.push(t);
    }
    for (now, budget) in [(0, 5), (50, 16), (99, 1), (100, 1000)] {
        let ids: Vec<String> = l
            .due_tasks(now, budget)
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids, l.due(now, budget), "now {now}, budget {budget}");
    }
}
