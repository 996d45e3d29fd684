//! `TaskList::page` (the cursor of `TXU.TASKS`), `last_attempt_ms`, and reading version 1.

use super::tests::task;
use super::*;

const BOTH: Listing = Listing {
    pending: true,
    dead: true,
};
const PENDING: Listing = Listing {
    pending: true,
    dead: false,
};
const DEAD: Listing = Listing {
    pending: false,
    dead: true,
};

/// `n` pending tasks `p0..`, each on its own key, then `d` of them (`p0`..) moved to the dead
/// list in order.
fn list(n: usize, d: usize) -> TaskList {
    let mut l = TaskList::new();
    for i in 0..n {
        l.push(task(&format!("p{i}"), &[&format!("k{i}")]));
    }
    for i in 0..d {
        l.failed(
            &format!("p{i}"),
            "WRONGTYPE".into(),
            ErrorClass::Permanent,
            7,
            0,
        );
    }
    l
}

/// Every page of a listing, with `count` per page and `examine` per call, and the ids.
fn walk(l: &TaskList, which: Listing, count: usize, examine: usize) -> (usize, Vec<String>) {
    let (mut cursor, mut pages, mut ids) = (0, 0, Vec::new());
    loop {
        let page = l.page(which, cursor, count, examine, |_| true);
        assert!(page.tasks.len() <= count);
        pages += 1;
        ids.extend(page.tasks.iter().map(|(t, _)| t.id.clone()));
        if page.next == 0 {
            return (pages, ids);
        }
        assert!(pages < 10_000, "a listing that never ends");
        cursor = page.next;
    }
}

fn names(prefix: &str, r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn pages_walk_pending_then_dead_exactly_once() {
    let l = list(25, 10);
    let mut all = names("p", 10..25);
    all.extend(names("p", 0..10));
    for count in [1, 3, 7, 100] {
        let (pages, ids) = walk(&l, BOTH, count, usize::MAX);
        assert_eq!(ids, all, "count {count}");
        assert_eq!(pages, 25usize.div_ceil(count), "count {count}");
    }
    assert_eq!(walk(&l, PENDING, 4, usize::MAX).1, names("p", 10..25));
    assert_eq!(walk(&l, DEAD, 4, usize::MAX).1, names("p", 0..10));
    assert_eq!(walk(&TaskList::new(), BOTH, 10, 100), (1, vec![]));
}

#[test]
fn a_page_reports_each_state_and_dead_cursors_carry_the_phase() {
    let l = list(3, 1);
    let page = l.page(BOTH, 0, 2, 100, |_| true);
    let got: Vec<_> = page
        .tasks
        .iter()
        .map(|(t, s)| (t.id.as_str(), *s))
        .collect();
    assert_eq!(got, [("p1", State::Pending), ("p2", State::Pending)]);
    // The next task to examine is the dead one.
    assert_ne!(page.next & DEAD_PHASE, 0);
    let page = l.page(BOTH, page.next, 2, 100, |_| true);
    let got: Vec<_> = page
        .tasks
        .iter()
        .map(|(t, s)| (t.id.as_str(), *s))
        .collect();
    assert_eq!(got, [("p0", State::Dead)]);
    assert_eq!(page.next, 0);
    // A dead-phase cursor given to a pending-only listing ends it.
    let dead_cursor = l.page(DEAD, 0, 1, 100, |_| true).next;
    assert_eq!(dead_cursor, 0, "one dead task fits one page");
    let l = list(3, 3);
    let next = l.page(DEAD, 0, 1, 100, |_| true).next;
    assert_ne!(next & DEAD_PHASE, 0);
    let page = l.page(PENDING, next, 10, 100, |_| true);
    assert!(page.tasks.is_empty() && page.next == 0);
}

#[test]
fn a_filter_pages_with_bounded_work_and_misses_nothing() {
    let l = list(100, 0);
    let keep = |t: &Task| t.id.ends_with('7');
    let mut examined_max = 0;
    let (mut cursor, mut ids, mut empty_pages) = (0, Vec::new(), 0);
    loop {
        let mut examined = 0;
        let page = l.page(PENDING, cursor, 5, 20, |t| {
            examined += 1;
            keep(t)
        });
        examined_max = examined_max.max(examined);
        empty_pages += usize::from(page.tasks.is_empty());
        ids.extend(page.tasks.iter().map(|(t, _)| t.id.clone()));
        if page.next == 0 {
            break;
        }
        cursor = page.next;
    }
    assert_eq!(
        ids,
        ["p7", "p17", "p27", "p37", "p47", "p57", "p67", "p77", "p87", "p97"]
    );
    assert_eq!(examined_max, 20, "a call examines at most `examine` tasks");
    assert_eq!(empty_pages, 0);
}

#[test]
fn a_listing_survives_changes_between_pages() {
    let mut l = list(10, 0);
    let first = l.page(PENDING, 0, 4, 100, |_| true);
    let next = first.next;
    assert_eq!(first.tasks.len(), 4);
    // Tasks already listed and the next one go away; a new one arrives.
    for id in ["p0", "p4", "p5"] {
        assert!(l.drop_task(id));
    }
    l.push(task("new", &["kn"]));
    assert_eq!(walk_from(&l, next), ["p6", "p7", "p8", "p9", "new"]);
}

fn walk_from(l: &TaskList, mut cursor: u64) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = l.page(PENDING, cursor, 2, 100, |_| true);
        ids.extend(page.tasks.iter().map(|(t, _)| t.id.clone()));
        if page.next == 0 {
            return ids;
        }
        cursor = page.next;
    }
}

#[test]
fn any_cursor_is_safe() {
    let l = list(5, 2);
    for c in [
        1,
        2,
        6,
        1000,
        u64::MAX,
        DEAD_PHASE,
        DEAD_PHASE | 3,
        DEAD_PHASE - 1,
        1 << 63,
    ] {
        for which in [BOTH, PENDING, DEAD] {
            let page = l.page(which, c, 10, 100, |_| true);
            assert!(page.tasks.len() <= 5, "cursor {c}");
        }
    }
    // A count or budget of 0 still makes progress.
    let page = l.page(BOTH, 0, 0, 0, |_| true);
    assert_eq!(page.tasks.len(), 1);
}

#[test]
fn a_failed_run_records_when_it_ran() {
    let mut l = TaskList::new();
    l.push(task("a", &["k"]));
    assert_eq!(l.get("a").and_then(|(t, _)| t.last_attempt_ms), None);
    l.failed("a", "OOM".into(), ErrorClass::Transient, 5_000, 100);
    assert_eq!(l.get("a").and_then(|(t, _)| t.last_attempt_ms), Some(5_000));
    l.failed("a", "WRONGTYPE".into(), ErrorClass::Permanent, 6_000, 100);
    let dead = l.get("a");
    assert_eq!(
        dead.map(|(t, s)| (t.last_attempt_ms, s)),
        Some((Some(6_000), State::Dead))
    );
    // A retried task keeps the time of its last run until it runs again.
    assert!(l.retry("a", 7_000));
    assert_eq!(l.get("a").and_then(|(t, _)| t.last_attempt_ms), Some(6_000));
}

/// Version 1 (txu 0.2) as it was written: `Task` without `last_attempt_ms`.
#[derive(serde::Serialize)]
struct TaskV1<'a> {
    id: &'a str,
    db: i32,
    user: &'a [u8],
    commands: Vec<Vec<Vec<u8>>>,
    keys: Vec<Vec<u8>>,
    created_ms: i64,
    attempts: u32,
    max_attempts: u32,
    next_attempt_ms: i64,
    last_error: &'a str,
}

fn v1(id: &str) -> TaskV1<'_> {
    TaskV1 {
        id,
        db: 3,
        user: b"app",
        commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
        keys: vec![key_id(3, b"k")],
        created_ms: 11,
        attempts: 2,
        max_attempts: 5,
        next_attempt_ms: 99,
        last_error: "OOM x",
    }
}

#[test]
fn version_1_tasks_and_lists_are_read() {
    let t = Task::decode(&crate::codec::encode(1, &v1("a"))).map_err(|e| e.to_string());
    let want = Task {
        id: "a".into(),
        db: 3,
        user: b"app".to_vec(),
        commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
        keys: vec![key_id(3, b"k")],
        created_ms: 11,
        attempts: 2,
        max_attempts: 5,
        next_attempt_ms: 99,
        last_error: "OOM x".into(),
        last_attempt_ms: None,
    };
    assert_eq!(t, Ok(want.clone()));
    assert_eq!(Task::decode(&want.encode()), Ok(want.clone()));
    assert_eq!(want.encode()[0], Task::VERSION);

    // A whole list: pending [a], dead [b], done [c], bound 7, 2 dropped.
    let snapshot = (
        vec![v1("a")],
        vec![v1("b")],
        vec!["c".to_string()],
        7u64,
        2u64,
    );
    let l = TaskList::decode(&crate::codec::encode(1, &snapshot));
    let l = l.map_err(|e| e.to_string());
    let Ok(l) = l else {
        panic!("version 1 list: {l:?}");
    };
    assert_eq!(
        l.get("a").map(|(t, s)| (t.clone(), s)),
        Some((want, State::Pending))
    );
    assert_eq!(l.get("b").map(|(_, s)| s), Some(State::Dead));
    assert_eq!(l.status("c"), Status::Done);
    assert_eq!((l.dead_max(), l.dropped_by_bound()), (7, 2));
    // Written back, it is version 2 and reads the same.
    let again = TaskList::decode(&l.encode()).map_err(|e| e.to_string());
    assert!(again.is_ok_and(|a| a.pending().eq(l.pending()) && a.dead().eq(l.dead())));
    // Another unknown version is refused.
    assert_eq!(
        Task::decode(&crate::codec::encode(9, &v1("a"))),
        Err(DecodeError::UnknownVersion(9))
    );
}
