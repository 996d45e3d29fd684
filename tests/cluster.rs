//! txu in Redis Cluster, against real clusters built by tests/common/cluster.rs (three
//! primaries, with one replica each where a test needs replicas).
//!
//! - `TXU.RUN` declares the keys of its commands, so the server itself routes it: `MOVED`,
//!   `ASK`, `TRYAGAIN` and `CROSSSLOT` come before txu runs anything, and `redis-cli -c` follows
//!   them from any node.
//! - The three-command form checks each queued command's keys: `MOVED` for a slot another node
//!   serves, `TRYAGAIN` for a migrating slot, `CROSSSLOT` for a second slot; each aborts the
//!   transaction (`EXECABORT`). A slot that starts migrating or moves before `TXU.EXEC` makes it
//!   apply nothing and reply `TRYAGAIN` / `MOVED`.
//! - Deferred tasks and retained undo logs belong to their slot: moving the slot (SETSLOT +
//!   MIGRATE) moves them to the new owner, which runs the tasks once, in order, and rolls the
//!   logs back by id, without a false conflict. No key sits in a slot its node does not serve,
//!   so `redis-cli --cluster check` stays clean and a restart deletes nothing.
//! - A task whose slot is moving, or that meets `CLUSTERDOWN`, waits instead of dying.
//! - After `CLUSTER FAILOVER` and after a primary dies, the new primary runs the tasks once and
//!   rolls the logs back.
//!
//! Every wait polls a condition with a deadline; nothing sleeps in place of a condition (the
//! one window, showing that a task does not run while its slot migrates, waits on the
//! server clock passing the task's due time).

mod common;

use common::cluster::{key_in_slot, key_slot, wait_for, Cluster};
use common::{array_items, bulk, task_ids, EXECABORT};
use common::{
    begin, begin_with, bulk_body, fields, flat_array, queue, queue_reply, run_text, show,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a condition that should follow quickly may take on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(15);
const CROSSSLOT: &str = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";

// ----- helpers ---------------------------------------------------------------------------------

/// `MOVED <slot> 127.0.0.1:<port of node>` as a raw reply.
fn moved(c: &Cluster, slot: u16, node: usize) -> String {
    format!("-MOVED {slot} {}\r\n", c.addr(node))
}

/// txu's `TRYAGAIN` for a slot that is moving, as a raw reply.
fn tryagain(slot: u16) -> String {
    format!("-TRYAGAIN slot {slot} is moving between nodes; retry when it has moved\r\n")
}

/// Waits until node `i` no longer knows `id` (`TXU.STATUS` says `unknown`): a node forgets the
/// tasks and logs of a slot that has moved away at its next timer tick.
#[track_caller]
fn wait_forgotten(c: &Cluster, i: usize, id: &str) {
    wait_state(c, i, id, "unknown");
}

/// `GET key` on node `i` (no redirect followed).
fn get(c: &Cluster, i: usize, key: &str) -> Option<String> {
    let r = c.call(i, &["GET", key]);
    if r == b"$-1\r\n" {
        return None;
    }
    match bulk_body(&r) {
        Some(b) => Some(show(b)),
        None => panic!("GET {key} on node {i}: {}", show(&r)),
    }
}

/// `LRANGE key 0 -1` on node `i`.
fn lrange(c: &Cluster, i: usize, key: &str) -> Vec<String> {
    let r = c.call(i, &["LRANGE", key, "0", "-1"]);
    flat_array(&r).unwrap_or_else(|| panic!("LRANGE {key} on node {i}: {}", show(&r)))
}

/// The clock of node `i` (`TIME`), in Unix ms.
fn server_ms(c: &Cluster, i: usize) -> i64 {
    let r = c.call(i, &["TIME"]);
    let t = flat_array(&r).unwrap_or_else(|| panic!("TIME on node {i}: {}", show(&r)));
    let secs: i64 = t[0].parse().expect("TIME seconds");
    let us: i64 = t[1].parse().expect("TIME microseconds");
    secs * 1000 + us / 1000
}

/// `DBSIZE` of node `i`.
fn dbsize(c: &Cluster, i: usize) -> u64 {
    let r = c.call_text(i, &["DBSIZE"]);
    r.trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("DBSIZE on node {i}: {r:?}"))
}

/// `TXU.STATUS id` on node `i` as field → value.
fn status(c: &Cluster, i: usize, id: &str) -> HashMap<String, String> {
    let r = c.call(i, &["TXU.STATUS", id]);
    fields(&r).unwrap_or_else(|| panic!("TXU.STATUS {id} on node {i}: {}", show(&r)))
}

/// The `state` of `TXU.STATUS id` on node `i`.
fn state(c: &Cluster, i: usize, id: &str) -> String {
    status(c, i, id).remove("state").unwrap_or_default()
}

/// The ids `TXU.TASKS` lists on node `i`, in order.
fn tasks(c: &Cluster, i: usize) -> Vec<String> {
    task_ids(&mut c.raw(i), &[]).0
}

/// A real transient fault on primary `p`: `min-replicas-to-write 5` (NOREPLICAS).
fn fault_on(c: &Cluster, p: usize) {
    c.config_set(p, "min-replicas-to-write", "5");
}

fn fault_off(c: &Cluster, p: usize) {
    c.config_set(p, "min-replicas-to-write", "0");
}

/// `txu.backoff-base-ms` and `txu.backoff-max-ms` on every running node.
fn backoff_all(c: &Cluster, base_ms: &str, max_ms: &str) {
    c.config_set_all("txu.backoff-base-ms", base_ms);
    c.config_set_all("txu.backoff-max-ms", max_ms);
}

/// Sends `args` (a `TXU.RUN RETRY ...` or similar) to node `i`, which must defer it because of
/// the NOREPLICAS fault; returns the task id.
#[track_caller]
fn defer(c: &Cluster, i: usize, args: &[&str]) -> String {
    let r = c.call_text(i, args);
    deferred_id(&r, "NOREPLICAS ", args)
}

/// The id of a `-DEFERRED <id> <cause...>` reply whose cause starts with `cause`.
#[track_caller]
fn deferred_id(r: &str, cause: &str, what: &[&str]) -> String {
    let rest = r
        .strip_prefix("-DEFERRED ")
        .unwrap_or_else(|| panic!("{what:?}: expected DEFERRED, got {r:?}"));
    let (id, why) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("{what:?}: {r:?}"));
    assert!(
        why.starts_with(cause),
        "{what:?}: expected {cause}..., {r:?}"
    );
    id.to_string()
}

/// Sends `args` to node `i`, which must defer it behind `task` on `key`; returns its id.
#[track_caller]
fn defer_behind(c: &Cluster, i: usize, args: &[&str], task: &str, key: &str) -> String {
    let r = c.call_text(i, args);
    let id = deferred_id(&r, "waiting behind", args);
    assert_eq!(
        r,
        format!("-DEFERRED {id} waiting behind deferred task {task} on key '{key}'\r\n"),
        "{args:?}"
    );
    id
}

/// `TXU.RUN RETAIN 600000 <frames...>` on node `i`, which must commit; returns the id.
#[track_caller]
fn retain(c: &Cluster, i: usize, frames: &[&str]) -> String {
    let mut args = vec!["TXU.RUN", "RETAIN", "600000"];
    args.extend_from_slice(frames);
    let r = c.call(i, &args);
    let items = array_items(&r).unwrap_or_else(|| panic!("{args:?}: {}", show(&r)));
    assert_eq!(items.len(), 2, "{args:?}: {}", show(&r));
    let id = bulk_body(items[0]).unwrap_or_else(|| panic!("{args:?}: {}", show(&r)));
    assert!(
        !show(items[1]).contains("\r\n-"),
        "{args:?} failed: {}",
        show(&r)
    );
    show(id)
}

/// Waits until `TXU.STATUS id` on node `i` says `want`.
#[track_caller]
fn wait_state(c: &Cluster, i: usize, id: &str, want: &str) {
    wait_for(
        &format!("TXU.STATUS {id} on node {i} to be {want}"),
        DEADLINE,
        || {
            let st = status(c, i, id);
            match st.get("state") {
                Some(s) if s == want => Ok(()),
                _ => Err(format!("TXU.STATUS {st:?}")),
            }
        },
    );
}

/// Waits until task `id` on node `i` has failed at least twice, the last time with a cluster
/// error that one of `causes` names (an error code it starts with, or words it contains), and
/// is still pending (not dead).
#[track_caller]
fn wait_waiting_on(c: &Cluster, i: usize, id: &str, causes: &[&str]) {
    wait_for(
        &format!("task {id} on node {i} to meet {causes:?} at least twice and stay pending"),
        DEADLINE,
        || {
            let st = status(c, i, id);
            let pending = st.get("state").map(String::as_str) == Some("pending");
            let met = st
                .get("last-error")
                .is_some_and(|e| causes.iter().any(|c| e.starts_with(c) || e.contains(c)));
            let tries = st.get("attempts").and_then(|n| n.parse::<u64>().ok());
            if pending && met && tries.is_some_and(|n| n >= 2) {
                Ok(())
            } else {
                Err(format!("TXU.STATUS {st:?}"))
            }
        },
    );
}

/// No key on a slot its node does not serve, and `redis-cli --cluster check` clean.
#[track_caller]
fn assert_tidy(c: &Cluster, when: &str) {
    let misplaced = c.misplaced_keys();
    assert!(
        misplaced.is_empty(),
        "{when}: keys in slots their node does not serve:\n{}",
        misplaced.join("\n")
    );
    if let Err(text) = c.check_clean() {
        panic!("{when}: redis-cli --cluster check is not clean:\n{text}");
    }
}

/// The slots of the `txu:*` keys on node `i`.
fn txu_slots(c: &Cluster, i: usize) -> Vec<u16> {
    c.txu_keys(i).into_iter().map(|(_, s)| s).collect()
}

// ----- the harness itself ----------------------------------------------------------------------

#[test]
fn harness_builds_a_stable_cluster_and_moves_slots() {
    let t = Instant::now();
    let c = Cluster::start(3, 1);
    let up = t.elapsed();
    let primaries = c.primaries();
    assert_eq!(primaries.len(), 3);
    for &p in &primaries {
        let r = c.replicas_of(p);
        assert_eq!(r.len(), 1, "replicas of {p}");
        assert_eq!(c.primary_of(r[0]), p);
    }
    for key in ["foo", "{user1}:a", "a{b}c", "{}x", "x{}y{z}"] {
        assert_eq!(
            c.keyslot_on(0, key.as_bytes()),
            key_slot(key.as_bytes()),
            "{key}"
        );
    }
    c.assert_check_clean();

    // A client that follows MOVED writes wherever the key lives.
    let (a, b) = (primaries[0], primaries[1]);
    let slot = c.slot_of(a, 7);
    let keys: Vec<String> = (0..250)
        .map(|n| key_in_slot(slot, &n.to_string()))
        .collect();
    let mut client = c.client(b);
    for k in &keys {
        assert_eq!(client.cmd_text(&["SET", k, k]), "+OK\r\n");
    }
    assert_eq!(client.redirects, [format!("MOVED {slot} {}", c.addr(a))]);
    assert_eq!(c.count_keys_in_slot(a, slot), 250);

    // Moving a slot moves its keys; the client follows the new owner.
    assert_eq!(c.migrate_slot(slot, a, b), 250);
    assert_eq!(c.owner(slot), b);
    assert_eq!(c.count_keys_in_slot(a, slot), 0);
    assert_eq!(c.count_keys_in_slot(b, slot), 250);
    let mut client = c.client(a);
    assert_eq!(client.cmd_text(&["GET", &keys[9]]), bulk(&keys[9]));
    assert_eq!(client.redirects, [format!("MOVED {slot} {}", c.addr(b))]);
    assert!(c.misplaced_keys().is_empty());
    c.assert_check_clean();
    eprintln!("cluster up in {up:?}, whole test {:?}", t.elapsed());
}

// ----- TXU.RUN: the server routes it ------------------------------------------------------------

#[test]
fn run_on_a_node_that_does_not_serve_its_slot_is_moved_and_across_slots_crossslot() {
    let c = Cluster::start(3, 0);
    let (ka, kb) = ("{user1}:a", "{user1}:b");
    let slot = key_slot(ka.as_bytes());
    let owner = c.owner(slot);
    let other = c.other_primary(slot);
    for args in [
        &["TXU.RUN", "3", "SET", ka, "1"][..],
        &["TXU.RUN", "3", "SET", ka, "1", "3", "SET", kb, "2"],
        &["TXU.RUN", "2", "GET", ka],
        &["TXU.RUN", "RETAIN", "60000", "3", "SET", ka, "1"],
        &["TXU.RUN", "RETRY", "3", "3", "SET", ka, "1"],
    ] {
        assert_eq!(c.call_text(other, args), moved(&c, slot, owner), "{args:?}");
    }
    // Two slots: CROSSSLOT on every node, the owner of either slot included.
    let elsewhere = "{user2}:a";
    assert_ne!(key_slot(elsewhere.as_bytes()), slot);
    for i in c.primaries() {
        for args in [
            &["TXU.RUN", "3", "SET", ka, "1", "3", "SET", elsewhere, "2"][..],
            &["TXU.RUN", "5", "MSET", ka, "1", elsewhere, "2"],
        ] {
            assert_eq!(c.call_text(i, args), CROSSSLOT, "{args:?} on node {i}");
        }
    }
    for i in c.primaries() {
        assert_eq!(dbsize(&c, i), 0, "nothing applied on node {i}");
    }
}

#[test]
fn run_with_hash_tags_commits_and_rolls_back_on_the_owner() {
    let c = Cluster::start(3, 0);
    let (ka, kb) = ("{user1}:a", "{user1}:b");
    let owner = c.owner_of(ka);
    assert_eq!(
        c.call_text(
            owner,
            &["TXU.RUN", "3", "SET", ka, "100", "3", "SET", kb, "20"]
        ),
        "*2\r\n+OK\r\n+OK\r\n"
    );
    assert_eq!(
        c.call_text(
            owner,
            &["TXU.RUN", "3", "DECRBY", ka, "30", "4", "HSET", kb, "f", "v"]
        ),
        "-ROLLBACK command 2 (HSET) failed: WRONGTYPE Operation against a key holding the wrong \
         kind of value\r\n"
    );
    assert_eq!(get(&c, owner, ka).as_deref(), Some("100"));
    // The three-command form too.
    let mut r = c.raw(owner);
    begin(&mut r);
    queue(&mut r, &["DECRBY", ka, "30"]);
    queue(&mut r, &["INCRBY", kb, "30"]);
    queue(&mut r, &["MGET", ka, kb]);
    assert_eq!(
        run_text(&mut r, &["TXU.EXEC"]),
        "*3\r\n:70\r\n:50\r\n*2\r\n$2\r\n70\r\n$2\r\n50\r\n"
    );
    begin(&mut r);
    queue(&mut r, &["DECRBY", ka, "30"]);
    queue(&mut r, &["LPUSH", kb, "x"]);
    let e = run_text(&mut r, &["TXU.EXEC"]);
    assert!(
        e.starts_with("-ROLLBACK command 2 (LPUSH) failed: WRONGTYPE"),
        "{e}"
    );
    assert_eq!(get(&c, owner, ka).as_deref(), Some("70"));
    // A retained log sits in the slot of its data and rolls back by id there.
    let id = retain(&c, owner, &["3", "SET", ka, "0"]);
    assert_tidy(&c, "with a retained log");
    assert_eq!(c.call_text(owner, &["TXU.ROLLBACK", &id]), "+OK\r\n");
    assert_eq!(get(&c, owner, ka).as_deref(), Some("70"));
    for i in c.primaries() {
        if i != owner {
            assert_eq!(dbsize(&c, i), 0, "node {i} got nothing");
        }
    }
    assert_tidy(&c, "at the end");
}

/// A script in a transaction on a cluster: routed by its declared keys, its writes to other
/// keys of the same slot undone with it, and a write to a key another node serves refused by
/// the server inside the script (the transaction rolls back).
#[test]
fn scripts_roll_back_on_the_owner_and_stay_in_their_slot() {
    let c = Cluster::start(3, 0);
    let (ka, kb) = ("{user2}:a", "{user2}:b");
    let owner = c.owner_of(ka);
    c.ok(owner, &["SET", ka, "100"]);
    let script = "redis.call('DECRBY', KEYS[1], 30); redis.call('HSET', '{user2}:b', 'f', 'v'); \
                  return redis.call(ARGV[1], KEYS[1])";
    // Declared keys route it: another node answers MOVED.
    let elsewhere = c
        .primaries()
        .into_iter()
        .find(|&i| i != owner)
        .unwrap_or(owner);
    let r = c.call_text(elsewhere, &["TXU.RUN", "5", "EVAL", script, "1", ka, "GET"]);
    assert!(r.starts_with("-MOVED "), "{r}");
    let r = c.call_text(owner, &["TXU.RUN", "5", "EVAL", script, "1", ka, "LPOP"]);
    assert!(
        r.starts_with("-ROLLBACK command 1 (EVAL) failed: WRONGTYPE"),
        "{r}"
    );
    assert_eq!(get(&c, owner, ka).as_deref(), Some("100"));
    assert_eq!(dbsize(&c, owner), 1, "{kb} was created and must be gone");
    // A key another node serves: the server refuses the call inside the script.
    let slot = (0..16384u16)
        .find(|&s| c.owner(s) != owner)
        .unwrap_or_default();
    let other = key_in_slot(slot, "x");
    let cross = format!("redis.call('SET', KEYS[1], '1'); redis.call('SET', '{other}', '1')");
    let r = c.call_text(owner, &["TXU.RUN", "4", "EVAL", &cross, "1", ka]);
    assert!(r.starts_with("-ROLLBACK command 1 (EVAL) failed: "), "{r}");
    assert!(r.contains("non local key"), "{r}");
    assert_eq!(get(&c, owner, ka).as_deref(), Some("100"));
    let r = c.call_text(owner, &["TXU.RUN", "5", "EVAL", script, "1", ka, "GET"]);
    assert_eq!(r, "*1\r\n$2\r\n70\r\n");
    assert_tidy(&c, "after scripts");
}

#[test]
fn redis_cli_c_runs_txu_run_from_any_node() {
    let c = Cluster::start(3, 0);
    let k = "{user1}:a";
    let slot = key_slot(k.as_bytes());
    let owner = c.owner(slot);
    for i in c.primaries() {
        let out = c.cli(
            i,
            &[
                &format!("TXU.RUN 3 SET {k} {i} 2 INCR {k}"),
                &format!("GET {k}"),
            ],
        );
        let mut want = String::new();
        if i != owner {
            want.push_str(&format!(
                "-> Redirected to slot [{slot}] located at {}\n",
                c.addr(owner)
            ));
        }
        want.push_str(&format!("1) OK\n2) (integer) {}\n\"{}\"\n", i + 1, i + 1));
        assert_eq!(out, want, "redis-cli -c -p <node {i}>");
        // One command given as arguments.
        let out = c.cli_args(i, &["TXU.RUN", "3", "SET", k, "v", "2", "GET", k]);
        assert_eq!(out, "OK\nv\n", "redis-cli -c -p <node {i}> TXU.RUN ...");
    }
}

#[test]
fn run_during_a_slot_migration_is_asked_or_tryagain_by_the_server() {
    let c = Cluster::start(3, 0);
    let (ka, kb, kc) = ("{m}:a", "{m}:b", "{m}:c");
    let slot = key_slot(ka.as_bytes());
    let from = c.owner(slot);
    let to = c.other_primary(slot);
    c.ok(from, &["MSET", ka, "1", kb, "1"]);
    c.begin_migration(slot, from, to);
    c.migrate_keys(from, to, &[kb]);
    let ask = format!("-ASK {slot} {}\r\n", c.addr(to));
    // A key still on the source runs there; a key that left (or never was) is ASKed.
    assert_eq!(
        c.call_text(from, &["TXU.RUN", "2", "INCR", ka]),
        "*1\r\n:2\r\n"
    );
    assert_eq!(c.call_text(from, &["TXU.RUN", "2", "INCR", kb]), ask);
    assert_eq!(c.call_text(from, &["TXU.RUN", "2", "INCR", kc]), ask);
    // Keys on both sides: the server says TRYAGAIN.
    let r = c.call_text(from, &["TXU.RUN", "2", "INCR", ka, "2", "INCR", kb]);
    assert!(r.starts_with("-TRYAGAIN "), "{r}");
    // A cluster client follows the ASK.
    let mut client = c.client(from);
    assert_eq!(
        client.cmd_text(&["TXU.RUN", "2", "INCR", kb, "2", "GET", kb]),
        "*2\r\n:2\r\n$1\r\n2\r\n"
    );
    assert_eq!(client.redirects, [format!("ASK {slot} {}", c.addr(to))]);
    c.move_keys(slot, from, to);
    c.finish_migration(slot, from, to);
    assert_eq!(get(&c, to, ka).as_deref(), Some("2"));
    assert_eq!(get(&c, to, kb).as_deref(), Some("2"));
    assert_tidy(&c, "after the migration");
}

// ----- the three-command form: txu checks each queued command's keys ---------------------------

#[test]
fn queue_of_a_key_another_node_serves_is_moved_and_aborts() {
    let c = Cluster::start(3, 0);
    let k = "{u}:a";
    let slot = key_slot(k.as_bytes());
    let owner = c.owner(slot);
    let other = c.other_primary(slot);
    let mut r = c.raw(other);
    // A read counts like a write; a later command does not undo the refusal.
    for cmd in [&["SET", k, "1"][..], &["GET", k]] {
        begin(&mut r);
        assert_eq!(
            show(&queue_reply(&mut r, cmd)),
            moved(&c, slot, owner),
            "{cmd:?}"
        );
        assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT, "{cmd:?}");
    }
    for i in c.primaries() {
        assert_eq!(dbsize(&c, i), 0, "nothing applied on node {i}");
    }
    assert_eq!(c.txu_info(other, "txu_transactions_aborted"), 2);
    // On the owner the same transaction commits.
    let mut r = c.raw(owner);
    begin(&mut r);
    queue(&mut r, &["SET", k, "1"]);
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), "*1\r\n+OK\r\n");
}

#[test]
fn queue_of_a_slot_nobody_serves_is_clusterdown_and_aborts() {
    let c = Cluster::start(3, 0);
    let p = c.primaries()[0];
    let slot = c.slot_of(p, 3);
    let k = key_in_slot(slot, "k");
    let s = slot.to_string();
    c.ok(p, &["CLUSTER", "DELSLOTS", &s]);
    let mut r = c.raw(p);
    begin(&mut r);
    assert_eq!(
        show(&queue_reply(&mut r, &["SET", &k, "1"])),
        format!("-CLUSTERDOWN Hash slot {slot} not served\r\n")
    );
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT);
    assert_eq!(dbsize(&c, p), 0, "nothing applied");
    c.ok(p, &["CLUSTER", "ADDSLOTS", &s]);
    c.wait_ok();
}

#[test]
fn queue_of_a_second_slot_is_crossslot_and_aborts() {
    let c = Cluster::start(3, 0);
    let p = c.primaries()[0];
    let (s1, s2) = (c.slot_of(p, 0), c.slot_of(p, 1));
    let (k1, k2) = (key_in_slot(s1, "x"), key_in_slot(s2, "y"));
    let mut r = c.raw(p);
    for second in [
        &["SET", k2.as_str(), "2"][..],
        &["GET", &k2],
        &["MSET", &k1, "1", &k2, "2"],
    ] {
        begin(&mut r);
        queue(&mut r, &["SET", &k1, "1"]);
        assert_eq!(show(&queue_reply(&mut r, second)), CROSSSLOT, "{second:?}");
        assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT, "{second:?}");
    }
    // One command whose own keys span two slots.
    begin(&mut r);
    assert_eq!(
        show(&queue_reply(&mut r, &["MSET", &k1, "1", &k2, "2"])),
        CROSSSLOT
    );
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT);
    assert_eq!(dbsize(&c, p), 0, "nothing applied");
    // Keys of one slot (hash tags) are fine.
    let k1b = key_in_slot(s1, "z");
    begin(&mut r);
    queue(&mut r, &["SET", &k1, "1"]);
    queue(&mut r, &["MSET", &k1b, "2", &k1, "3"]);
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
}

#[test]
fn queue_in_a_migrating_slot_is_tryagain_and_aborts() {
    let c = Cluster::start(3, 0);
    let k = "{mig}:k";
    let slot = key_slot(k.as_bytes());
    let from = c.owner(slot);
    let to = c.other_primary(slot);
    c.ok(from, &["SET", k, "1"]);
    c.begin_migration(slot, from, to);
    // On the migrating node: TRYAGAIN, the transaction is aborted.
    let mut r = c.raw(from);
    begin(&mut r);
    assert_eq!(
        show(&queue_reply(&mut r, &["INCR", k])),
        tryagain(slot),
        "TXU.QUEUE on the migrating node"
    );
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT);
    // On the importing node too.
    let mut r2 = c.raw(to);
    begin(&mut r2);
    assert_eq!(
        show(&queue_reply(&mut r2, &["INCR", k])),
        tryagain(slot),
        "TXU.QUEUE on the importing node"
    );
    assert_eq!(run_text(&mut r2, &["TXU.EXEC"]), EXECABORT);
    assert_eq!(get(&c, from, k).as_deref(), Some("1"), "nothing applied");
    assert_eq!(dbsize(&c, to), 0, "nothing applied on the importing node");
    // Once the slot has moved, the new owner runs it and the old one redirects.
    c.move_keys(slot, from, to);
    c.finish_migration(slot, from, to);
    begin(&mut r2);
    queue(&mut r2, &["INCR", k]);
    assert_eq!(run_text(&mut r2, &["TXU.EXEC"]), "*1\r\n:2\r\n");
    begin(&mut r);
    assert_eq!(
        show(&queue_reply(&mut r, &["INCR", k])),
        moved(&c, slot, to)
    );
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), EXECABORT);
    assert_tidy(&c, "after the migration");
}

#[test]
fn a_slot_that_starts_migrating_before_exec_is_tryagain_and_nothing_applied() {
    let c = Cluster::start(3, 0);
    let (k, k2) = ("{mig}:k", "{mig}:new");
    let slot = key_slot(k.as_bytes());
    let from = c.owner(slot);
    let to = c.other_primary(slot);
    c.ok(from, &["SET", k, "1"]);
    let mut r = c.raw(from);
    begin(&mut r);
    queue(&mut r, &["INCR", k]);
    queue(&mut r, &["SET", k2, "x"]);
    c.begin_migration(slot, from, to);
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), tryagain(slot));
    assert_eq!(get(&c, from, k).as_deref(), Some("1"), "nothing applied");
    assert_eq!(c.keys_in_slot(from, slot), [k], "nothing created");
    // The client retries once the slot has moved, on the new owner.
    c.move_keys(slot, from, to);
    c.finish_migration(slot, from, to);
    let mut client = c.client(from);
    assert_eq!(
        client.cmd_text(&["TXU.RUN", "2", "INCR", k, "3", "SET", k2, "x"]),
        "*2\r\n:2\r\n+OK\r\n"
    );
    assert_tidy(&c, "after the migration");
}

#[test]
fn a_slot_that_moves_before_exec_is_moved_and_nothing_applied() {
    let c = Cluster::start(3, 0);
    let (k, k2) = ("{mig}:k", "{mig}:new");
    let slot = key_slot(k.as_bytes());
    let from = c.owner(slot);
    let to = c.other_primary(slot);
    c.ok(from, &["SET", k, "1"]);
    let mut r = c.raw(from);
    begin(&mut r);
    queue(&mut r, &["INCR", k]);
    queue(&mut r, &["SET", k2, "x"]);
    assert_eq!(c.migrate_slot(slot, from, to), 1);
    assert_eq!(run_text(&mut r, &["TXU.EXEC"]), moved(&c, slot, to));
    assert_eq!(get(&c, to, k).as_deref(), Some("1"), "nothing applied");
    assert_eq!(
        c.count_keys_in_slot(from, slot),
        0,
        "nothing left on the old owner"
    );
    assert_eq!(c.keys_in_slot(to, slot), [k], "nothing created");
    assert_tidy(&c, "after the migration");
}

// ----- deferred tasks and retained logs belong to their slot -----------------------------------

#[test]
fn txu_keys_sit_in_slots_their_node_serves() {
    let c = Cluster::start(3, 0);
    backoff_all(&c, "60000", "60000");
    for p in c.primaries() {
        let n = c.key_on(p, "n");
        c.ok(p, &["SET", &n, "0"]);
        retain(&c, p, &["2", "INCR", &n]);
        fault_on(&c, p);
        defer(&c, p, &["TXU.RUN", "RETRY", "10", "2", "INCR", &n]);
        fault_off(&c, p);
        assert_eq!(tasks(&c, p).len(), 1, "node {p}");
    }
    for p in c.primaries() {
        let served = c.slots_of(p);
        for (key, slot) in c.txu_keys(p) {
            assert!(
                served.iter().any(|&(a, b)| a <= slot && slot <= b),
                "node {p} holds {key} in slot {slot}, which it does not serve ({served:?})"
            );
        }
    }
    assert_tidy(&c, "with a task and a retained log on every primary");
}

#[test]
fn pending_tasks_move_with_their_slot_and_run_once_on_the_new_owner() {
    let c = Cluster::start(3, 0);
    let primaries = c.primaries();
    let (a, b) = (primaries[0], primaries[1]);
    let (s1, s2) = (c.slot_of(a, 0), c.slot_of(a, 1));
    let (n1, log1, n2) = (
        key_in_slot(s1, "n"),
        key_in_slot(s1, "log"),
        key_in_slot(s2, "n"),
    );
    // Tasks wait at least 30 s between runs: nothing runs unless the test says so.
    backoff_all(&c, "60000", "60000");
    fault_on(&c, a);
    let t1 = defer(
        &c,
        a,
        &[
            "TXU.RUN", "RETRY", "10", "2", "INCR", &n1, "3", "RPUSH", &log1, "a",
        ],
    );
    let t2 = defer_behind(
        &c,
        a,
        &["TXU.RUN", "RETRY", "10", "3", "RPUSH", &log1, "b"],
        &t1,
        &log1,
    );
    let mut r = c.raw(a);
    begin_with(&mut r, &["RETRY", "10"]);
    queue(&mut r, &["INCR", &n1]);
    let t3 = deferred_id(
        &run_text(&mut r, &["TXU.EXEC"]),
        "waiting behind",
        &["TXU.EXEC"],
    );
    let t4 = defer(&c, a, &["TXU.RUN", "RETRY", "10", "2", "INCR", &n2]);
    fault_off(&c, a);
    assert_eq!(tasks(&c, a), [t1.as_str(), &t2, &t3, &t4]);
    assert!(
        txu_slots(&c, a).contains(&s1),
        "the tasks of slot {s1} are kept in it: {:?}",
        c.txu_keys(a)
    );
    assert_tidy(&c, "before the migration");

    c.migrate_slot(s1, a, b);
    assert_eq!(
        tasks(&c, b),
        [t1.as_str(), &t2, &t3],
        "the new owner lists the moved tasks"
    );
    for t in [&t1, &t2, &t3] {
        assert_eq!(state(&c, b, t), "pending", "{t} on the new owner");
        wait_forgotten(&c, a, t);
    }
    assert_eq!(
        tasks(&c, a),
        [t4.as_str()],
        "the old owner keeps the task of the slot it kept"
    );
    assert_eq!(
        c.count_keys_in_slot(a, s1),
        0,
        "nothing of slot {s1} left behind"
    );
    assert!(!txu_slots(&c, a).contains(&s1), "{:?}", c.txu_keys(a));
    assert!(txu_slots(&c, b).contains(&s1), "{:?}", c.txu_keys(b));
    assert_eq!(get(&c, b, &n1), None, "nothing applied yet");
    assert_tidy(&c, "after the migration");

    for t in [&t1, &t2, &t3] {
        assert_eq!(
            c.call_text(b, &["TXU.RETRY", t]),
            "+OK\r\n",
            "TXU.RETRY {t}"
        );
    }
    wait_state(&c, b, &t3, "done");
    for t in [&t1, &t2] {
        assert_eq!(state(&c, b, t), "done", "{t}");
    }
    assert_eq!(
        get(&c, b, &n1).as_deref(),
        Some("2"),
        "two INCRs, once each"
    );
    assert_eq!(lrange(&c, b, &log1), ["a", "b"], "in order, once each");
    assert_eq!(c.txu_info(b, "txu_retries_succeeded"), 3);
    assert_eq!(c.txu_info(a, "txu_retries_succeeded"), 0);
    assert_eq!(c.call_text(a, &["TXU.RETRY", &t4]), "+OK\r\n");
    wait_state(&c, a, &t4, "done");
    assert_eq!(get(&c, a, &n2).as_deref(), Some("1"));
    assert_tidy(&c, "after the tasks ran");
}

#[test]
fn moved_tasks_run_by_themselves_in_order_on_the_new_owner() {
    let c = Cluster::start(3, 0);
    let primaries = c.primaries();
    let (a, b) = (primaries[0], primaries[1]);
    let slot = c.slot_of(a, 0);
    let log = key_in_slot(slot, "log");
    // The first retry comes 1.5 to 3 s after the fault: time enough to move the slot.
    backoff_all(&c, "3000", "3000");
    fault_on(&c, a);
    let t1 = defer(&c, a, &["TXU.RUN", "RETRY", "10", "3", "RPUSH", &log, "a"]);
    let t2 = defer_behind(
        &c,
        a,
        &["TXU.RUN", "RETRY", "10", "3", "RPUSH", &log, "b"],
        &t1,
        &log,
    );
    fault_off(&c, a);
    c.migrate_slot(slot, a, b);
    wait_forgotten(&c, a, &t1);
    wait_forgotten(&c, a, &t2);
    assert_eq!(
        tasks(&c, a),
        Vec::<String>::new(),
        "the old owner kept no task"
    );
    wait_for(
        "the moved tasks to apply on the new owner",
        DEADLINE,
        || match lrange(&c, b, &log) {
            l if l.len() >= 2 => Ok(()),
            l => Err(format!(
                "{log} on the new owner: {l:?}; TXU.STATUS {t1} there: {:?}",
                status(&c, b, &t1)
            )),
        },
    );
    assert_eq!(lrange(&c, b, &log), ["a", "b"]);
    assert_eq!(state(&c, b, &t1), "done");
    assert_eq!(state(&c, b, &t2), "done");
    assert_eq!(c.txu_info(b, "txu_retries_succeeded"), 2);
    assert_eq!(
        c.txu_info(a, "txu_retries_run"),
        0,
        "the old owner ran nothing"
    );
    assert_tidy(&c, "after the tasks ran");
}

#[test]
fn retained_logs_move_with_their_slot_and_roll_back_there() {
    let c = Cluster::start(3, 0);
    let primaries = c.primaries();
    let (a, b) = (primaries[0], primaries[1]);
    let slot = c.slot_of(a, 0);
    let (k1, k2, k3) = (
        key_in_slot(slot, "k1"),
        key_in_slot(slot, "k2"),
        key_in_slot(slot, "h"),
    );
    c.ok(a, &["MSET", &k1, "old1", &k2, "old2"]);
    assert_eq!(c.call_text(a, &["HSET", &k3, "f", "old"]), ":1\r\n");
    let id1 = retain(
        &c,
        a,
        &["3", "SET", &k1, "new1", "4", "HSET", &k3, "f", "new"],
    );
    let id2 = retain(&c, a, &["3", "SET", &k2, "new2"]);
    assert_eq!(
        txu_slots(&c, a).iter().filter(|&&s| s == slot).count(),
        2,
        "one undo log key each, in the slot of its data: {:?}",
        c.txu_keys(a)
    );
    assert_tidy(&c, "before the migration");

    c.migrate_slot(slot, a, b);
    for id in [&id1, &id2] {
        assert_eq!(state(&c, b, id), "retained", "{id} on the new owner");
        // The old owner points the caller to where the log went.
        assert_eq!(
            c.call_text(a, &["TXU.ROLLBACK", id]),
            moved(&c, slot, b),
            "TXU.ROLLBACK {id} on the old owner"
        );
        wait_forgotten(&c, a, id);
    }
    assert_eq!(c.count_keys_in_slot(a, slot), 0);
    assert_eq!(c.txu_info(a, "txu_undo_logs_retained"), 0);
    assert_eq!(c.txu_info(b, "txu_undo_logs_retained"), 2);
    assert_tidy(&c, "after the migration");

    // Moving the slot is no change to the data: no conflict.
    assert_eq!(c.call_text(b, &["TXU.ROLLBACK", &id1]), "+OK\r\n");
    assert_eq!(get(&c, b, &k1).as_deref(), Some("old1"));
    assert_eq!(
        c.call_text(b, &["HGET", &k3, "f"]),
        "$3\r\nold\r\n",
        "the hash field is back"
    );
    // A client's write after the commit is one.
    c.ok(b, &["SET", &k2, "mine"]);
    assert_eq!(
        c.call_text(b, &["TXU.ROLLBACK", &id2]),
        format!(
            "-CONFLICT key '{k2}' changed after transaction {id2} committed; TXU.ROLLBACK {id2} \
             FORCE undoes it anyway\r\n"
        )
    );
    assert_eq!(get(&c, b, &k2).as_deref(), Some("mine"));
    assert_eq!(c.call_text(b, &["TXU.ROLLBACK", &id2, "FORCE"]), "+OK\r\n");
    assert_eq!(get(&c, b, &k2).as_deref(), Some("old2"));
    assert_eq!(c.txu_info(b, "txu_undo_logs_retained"), 0);
    assert_eq!(
        c.count_keys_in_slot(a, slot),
        0,
        "the old owner wrote nothing back"
    );
    assert_tidy(&c, "after the rollbacks");
}

// ----- cluster errors met by a retry are transient ---------------------------------------------

#[test]
fn a_task_whose_slot_is_migrating_waits_then_runs_once_on_the_new_owner() {
    let c = Cluster::start(3, 0);
    let primaries = c.primaries();
    let (a, b) = (primaries[0], primaries[1]);
    let slot = c.slot_of(a, 0);
    let n = key_in_slot(slot, "n");
    backoff_all(&c, "100", "200");
    fault_on(&c, a);
    let t = defer(&c, a, &["TXU.RUN", "RETRY", "1000", "2", "INCR", &n]);
    c.begin_migration(slot, a, b);
    fault_off(&c, a);
    // The task falls due while its slot is migrating. That it neither runs nor dies can only
    // be seen over a window: until the server's clock is 1 s (ten ticks) past its due time.
    let due: i64 = status(&c, a, &t)
        .get("next-attempt-at")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("TXU.STATUS {t}: {:?}", status(&c, a, &t)));
    wait_for(
        "the server clock 1 s past the task's due time",
        DEADLINE,
        || match server_ms(&c, a) {
            now if now >= due + 1000 => Ok(()),
            now => Err(format!("now {now}, due {due}")),
        },
    );
    let st = status(&c, a, &t);
    assert_eq!(
        st.get("state").map(String::as_str),
        Some("pending"),
        "{st:?}"
    );
    // Not run, or run into the slot's move (TRYAGAIN, or the redirect a module call reports
    // as a non-local key) and waiting again.
    let last = st.get("last-error").cloned().unwrap_or_default();
    assert!(
        ["NOREPLICAS", "TRYAGAIN", "ASK ", "MOVED ", "non local key"]
            .iter()
            .any(|c| last.starts_with(c) || last.contains(c)),
        "{st:?}"
    );
    assert_eq!(
        c.keys_in_slot(b, slot),
        Vec::<String>::new(),
        "nothing applied"
    );
    let left = c.keys_in_slot(a, slot);
    assert!(
        left.iter().all(|k| k.starts_with("txu:")),
        "nothing applied: {left:?}"
    );
    c.move_keys(slot, a, b);
    c.finish_migration(slot, a, b);
    wait_state(&c, b, &t, "done");
    assert_eq!(get(&c, b, &n).as_deref(), Some("1"));
    assert_eq!(c.txu_info(b, "txu_retries_succeeded"), 1);
    assert_eq!(c.txu_info(a, "txu_retries_succeeded"), 0);
    assert_tidy(&c, "after the task ran");
}

#[test]
fn a_task_waits_while_the_cluster_is_down() {
    let mut c = Cluster::start(3, 0);
    let primaries = c.primaries();
    let (a, down) = (primaries[0], primaries[2]);
    let n = c.key_on(a, "n");
    backoff_all(&c, "100", "200");
    fault_on(&c, a);
    let t = defer(&c, a, &["TXU.RUN", "RETRY", "1000", "2", "INCR", &n]);
    c.kill(down);
    wait_for("node a to see the cluster down", DEADLINE, || {
        match c.call_text(a, &["CLUSTER", "INFO"]) {
            i if i.contains("cluster_state:fail") => Ok(()),
            i => Err(i),
        }
    });
    fault_off(&c, a);
    wait_waiting_on(&c, a, &t, &["CLUSTERDOWN", "cluster is down"]);
    assert!(
        c.scan(a, &n).is_empty(),
        "nothing applied while the cluster is down"
    );
    c.start_again(down);
    wait_state(&c, a, &t, "done");
    assert_eq!(get(&c, a, &n).as_deref(), Some("1"));
    assert_eq!(c.txu_info(a, "txu_retries_succeeded"), 1);
    assert_tidy(&c, "after the task ran");
}

// ----- replicas and failover ------------------------------------------------------------------

/// On primary `p` (fault on): two tasks on one key and a retained log, replicated; returns
/// (task ids, counter key, list key, retained id, retained key).
fn tasks_and_a_log(c: &Cluster, p: usize) -> (Vec<String>, String, String, String, String) {
    let (n, log, k) = (c.key_on(p, "n"), c.key_on(p, "log"), c.key_on(p, "k"));
    c.ok(p, &["SET", &k, "old"]);
    let id = retain(c, p, &["3", "SET", &k, "new"]);
    fault_on(c, p);
    let t1 = defer(
        c,
        p,
        &[
            "TXU.RUN", "RETRY", "100", "2", "INCR", &n, "3", "RPUSH", &log, "a",
        ],
    );
    let t2 = defer_behind(
        c,
        p,
        &["TXU.RUN", "RETRY", "100", "3", "RPUSH", &log, "b"],
        &t1,
        &log,
    );
    c.wait_replicas_synced(p);
    for r in c.replicas_of(p) {
        assert_eq!(
            tasks(c, r),
            [t1.as_str(), &t2],
            "replica {r} keeps the list"
        );
    }
    (vec![t1, t2], n, log, id, k)
}

#[test]
fn after_cluster_failover_the_new_primary_runs_the_tasks_once_and_rolls_back() {
    let c = Cluster::start(3, 1);
    let a = c.primaries()[0];
    let r = c.replicas_of(a)[0];
    // Retries come every 0.5 to 1 s; the old primary keeps failing them (NOREPLICAS).
    backoff_all(&c, "1000", "1000");
    let (ts, n, log, id, k) = tasks_and_a_log(&c, a);
    c.failover(r);
    for t in &ts {
        wait_state(&c, r, t, "done");
    }
    assert_eq!(get(&c, r, &n).as_deref(), Some("1"));
    assert_eq!(lrange(&c, r, &log), ["a", "b"]);
    assert_eq!(c.txu_info(r, "txu_retries_succeeded"), 2);
    assert_eq!(c.txu_info(a, "txu_retries_succeeded"), 0);
    assert_eq!(c.call_text(r, &["TXU.ROLLBACK", &id]), "+OK\r\n");
    assert_eq!(get(&c, r, &k).as_deref(), Some("old"));
    c.wait_replicas_synced(r);
    assert_eq!(c.primary_of(a), r, "the old primary replicates the new one");
    assert_tidy(&c, "after the failover");
}

#[test]
fn after_a_primary_dies_its_replica_runs_the_tasks_once_and_rolls_back() {
    let mut c = Cluster::start(3, 1);
    let a = c.primaries()[0];
    backoff_all(&c, "1000", "1000");
    let (ts, n, log, id, k) = tasks_and_a_log(&c, a);
    let r = c.kill_primary(a);
    for t in &ts {
        wait_state(&c, r, t, "done");
    }
    assert_eq!(get(&c, r, &n).as_deref(), Some("1"));
    assert_eq!(lrange(&c, r, &log), ["a", "b"]);
    assert_eq!(c.txu_info(r, "txu_retries_succeeded"), 2);
    assert_eq!(c.call_text(r, &["TXU.ROLLBACK", &id]), "+OK\r\n");
    assert_eq!(get(&c, r, &k).as_deref(), Some("old"));
    // The dead primary comes back as a replica of the new one.
    c.start_again(a);
    assert_eq!(c.primary_of(a), r);
    assert_tidy(&c, "after the old primary rejoined");
}

// ----- restarts ----------------------------------------------------------------------------

#[test]
fn node_restarts_keep_tasks_and_logs_and_delete_nothing() {
    let mut c = Cluster::start_with(
        3,
        0,
        &[
            "--appendonly",
            "yes",
            "--txu.backoff-base-ms",
            "60000",
            "--txu.backoff-max-ms",
            "60000",
        ],
    );
    let primaries = c.primaries();
    let (a, b) = (primaries[0], primaries[1]);
    let (s1, s2) = (c.slot_of(a, 0), c.slot_of(a, 1));
    let (n1, n2, k) = (
        key_in_slot(s1, "n"),
        key_in_slot(s2, "n"),
        key_in_slot(s1, "k"),
    );
    c.ok(a, &["SET", &k, "old"]);
    let id = retain(&c, a, &["3", "SET", &k, "new"]);
    fault_on(&c, a);
    let t1 = defer(&c, a, &["TXU.RUN", "RETRY", "10", "2", "INCR", &n1]);
    let t2 = defer(&c, a, &["TXU.RUN", "RETRY", "10", "2", "INCR", &n2]);
    fault_off(&c, a);
    // Slot s1 (t1 and the log) moves to b; s2 (t2) stays on a.
    c.migrate_slot(s1, a, b);
    assert_tidy(&c, "before the restarts");
    let keys_before: Vec<u64> = primaries.iter().map(|&p| dbsize(&c, p)).collect();

    c.restart(a);
    c.restart(b);
    c.kill9_and_restart(primaries[2]);
    assert_tidy(&c, "after the restarts");
    let keys_after: Vec<u64> = primaries.iter().map(|&p| dbsize(&c, p)).collect();
    assert_eq!(keys_after, keys_before, "DBSIZE of each primary");
    for p in [a, b] {
        let log = c.node(p).log();
        for bad in ["I have keys for slot", "Deleting keys", "importing state"] {
            assert!(
                !log.contains(bad),
                "node {p} log says {bad:?}:\n{}",
                log.lines()
                    .filter(|l| l.contains(bad))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    assert_eq!(tasks(&c, b), [t1.as_str()]);
    assert_eq!(tasks(&c, a), [t2.as_str()]);
    assert_eq!(state(&c, b, &id), "retained");
    assert_eq!(c.call_text(b, &["TXU.RETRY", &t1]), "+OK\r\n");
    assert_eq!(c.call_text(a, &["TXU.RETRY", &t2]), "+OK\r\n");
    wait_state(&c, b, &t1, "done");
    wait_state(&c, a, &t2, "done");
    assert_eq!(get(&c, b, &n1).as_deref(), Some("1"));
    assert_eq!(get(&c, a, &n2).as_deref(), Some("1"));
    assert_eq!(c.call_text(b, &["TXU.ROLLBACK", &id]), "+OK\r\n");
    assert_eq!(get(&c, b, &k).as_deref(), Some("old"));
    assert_tidy(&c, "at the end");
}

/// README's `redis-cli -c` session, replayed on a real cluster from the node serving slot 0:
/// the same replies, and the same redirect (to whichever node serves the slot here).
#[test]
fn the_readme_cluster_transcript_replays_exactly() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let start = readme
        .find("<!-- cluster transcript")
        .expect("README.md has a cluster transcript");
    let rest = &readme[start..];
    let body = &rest[rest.find("```text\n").expect("a text block") + 8..];
    let body = &body[..body.find("```").expect("the block is closed")];
    let (mut commands, mut want) = (Vec::new(), String::new());
    for line in body.lines() {
        match line.split_once("> ") {
            Some((prompt, cmd)) if prompt.starts_with("127.0.0.1:") => commands.push(cmd),
            _ => {
                want.push_str(line);
                want.push('\n');
            }
        }
    }
    assert!(commands.len() >= 5, "the transcript is suspiciously short");
    let c = Cluster::start(3, 0);
    let first = c.owner(0);
    let owner = c.owner(key_slot(b"{user1}"));
    assert_ne!(first, owner, "slot 0 and {{user1}} are on different nodes");
    let got = c.cli(first, &commands);
    let want = want.replace("127.0.0.1:7002", &c.addr(owner));
    assert_eq!(got, want);
}
