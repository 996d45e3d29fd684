//! txu on a Redis Cluster with the `redis` crate's sync `ClusterClient`.
//!
//! A transaction lives in one slot: give its keys a common hash tag (`{user1}:...`).
//! `TXU.RUN` declares its keys to the server, which answers MOVED / CROSSSLOT itself;
//! this example sends it straight to the primary that owns the slot (see `run_in_slot_of`).
//!
//! Run: TXU_CLUSTER_URL=redis://127.0.0.1:7000 cargo run --release --bin txu_cluster

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use txu_examples::{outcome, txu_run, Outcome};

/// Runs `cmd` on the primary that serves `key`'s slot.
///
/// Why not just `cmd.query(&mut con)`: the crate routes commands it does not know (like
/// every module command) by argument 1, taken as the key. For `TXU.RUN` that is the first
/// argument count ("3") or "RETRY": the slot of the string "3", not of the transaction's
/// keys. The node that gets it answers `MOVED` and the crate follows — after re-reading
/// the cluster's slot map — so it still works, at the price of a redirect and a slot-map
/// refresh per call whenever another node serves the keys. `route_command` with the slot
/// of one of the transaction's keys sends it to the right primary at once.
///
/// The crate still handles redirects and retries for routed commands (MOVED, ASK while a
/// slot moves, TRYAGAIN, CLUSTERDOWN): txu applies nothing when it replies those, so a
/// retry is safe. ROLLBACK, DEFERRED, PENDING and EXECABORT come back as errors unretried.
/// But it also resends after an I/O error (a dropped connection, a response timeout), so a
/// transaction whose reply was lost runs again: `ClusterClient::builder(..).retries(0)`
/// turns every retry off if that matters.
///
/// (The three-command form TXU.BEGIN/QUEUE/EXEC needs one pinned connection: open a plain
/// `redis::Client` connection to the slot's primary for it; `ClusterConnection` does not
/// pin.)
fn run_in_slot_of(con: &mut ClusterConnection, key: &str, cmd: &redis::Cmd) -> RedisResult<Value> {
    let route = Route::with_key(key, SlotAddr::Master); // the hash tag decides the slot
    con.route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)))
}

/// The id of the node a route leads to.
fn node_id(con: &mut ClusterConnection, key: &str) -> RedisResult<String> {
    let myid = redis::cmd("CLUSTER").arg("MYID").clone();
    redis::from_redis_value(run_in_slot_of(con, key, &myid)?).map_err(RedisError::from)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("TXU_CLUSTER_URL").unwrap_or_else(|_| "redis://127.0.0.1:7000".into());
    let mut con = ClusterClient::new(vec![url.as_str()])?.get_connection()?;

    // Keys of one transaction share the hash tag {rs-alice}, hence one slot.
    let (balance, spent) = ("{rs-alice}:balance", "{rs-alice}:spent");
    redis::cmd("MSET").arg(&[balance, "100", spent, "0"]).exec(&mut con)?;
    let spend = |amount: &str| {
        txu_run(
            &[],
            &[
                &["DECRBY", balance, amount],
                &["TXU.CHECK", "1", "GE", "0"], // balance must stay >= 0
                &["INCRBY", spent, amount],
            ],
        )
    };

    // 1. Commit, routed by the key's slot.
    match outcome(run_in_slot_of(&mut con, balance, &spend("30")))? {
        Outcome::Committed(replies) => {
            println!("committed: {replies:?}");
            assert_eq!(replies, vec![Value::Int(70), Value::Okay, Value::Int(30)]);
        }
        other => panic!("spending 30 should commit, got {other:?}"),
    }

    // 2. Roll back: the check fails after DECRBY ran on that node; DECRBY is undone.
    match outcome(run_in_slot_of(&mut con, balance, &spend("80")))? {
        Outcome::RolledBack { command, name, error } => {
            println!("rolled back: command {command} ({name}) failed: {error}");
            assert_eq!((command, name.as_str()), (2, "TXU.CHECK"));
        }
        other => panic!("spending 80 should roll back, got {other:?}"),
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&[balance, spent]).query(&mut con)?;
    println!("after the rollback: {values:?}");
    assert_eq!(values, [Some("70".into()), Some("30".into())], "rollback left a write");

    // 3. Keys in two slots: the server refuses with CROSSSLOT (a code the crate knows).
    let two_slots = txu_run(&[], &[&["SET", "{rs-alice}:a", "1"], &["SET", "{rs-bob}:b", "2"]]);
    let err = outcome(run_in_slot_of(&mut con, "{rs-alice}:a", &two_slots)).unwrap_err();
    println!("two slots: {} {}", err.code().unwrap_or("?"), err.detail().unwrap_or(""));
    assert_eq!(err.kind(), ErrorKind::Server(ServerErrorKind::CrossSlot));

    // 4. Why route_command. A connection with redirects off (retries(0)) shows where
    // each way of sending lands. The crate's own routing sends TXU.RUN to the slot of its
    // argument 1, "3": unless that node also serves {rs-alice}, the reply is MOVED.
    let builder = ClusterClient::builder(vec![url.as_str()]).retries(0);
    let mut no_redirects = builder.build()?.get_connection()?;
    let wrong_node = node_id(&mut no_redirects, "3")? != node_id(&mut no_redirects, balance)?;
    match spend("1").query::<Value>(&mut no_redirects) {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::Moved) => {
            println!("crate's own routing, no redirects: MOVED {}", e.detail().unwrap_or(""));
            assert!(wrong_node, "MOVED although the slot of \"3\" is on the right node");
        }
        Ok(_) => assert!(!wrong_node, "the crate no longer routes TXU.RUN by argument 1?"),
        Err(e) => return Err(e.into()),
    }
    // route_command goes to the right primary at once.
    let routed = outcome(run_in_slot_of(&mut no_redirects, balance, &spend("1")))?;
    println!("route_command, no redirects: {routed:?}");
    assert!(matches!(routed, Outcome::Committed(_)), "got {routed:?}");
    // With redirects on (the default), the crate's own routing works too, one MOVED later.
    let default_routed = outcome(spend("1").query(&mut con))?;
    assert!(matches!(default_routed, Outcome::Committed(_)), "got {default_routed:?}");
    Ok(())
}
