//! The workloads, one module each, the table of them the driver runs, and the requests they
//! share.

use crate::measure::Ctx;
use crate::report::Outcome;
use crate::resp::push_command;

mod big_key;
mod compaction;
mod drain;
mod mixed;
mod module_loaded;
mod preimage_bytes;
mod recovery;
mod rollback;
mod script;
mod single;
mod ten_set;

/// One benchmark workload: `id` selects it on the command line.
pub struct Workload {
    pub id: &'static str,
    pub about: &'static str,
    pub run: fn(&Ctx) -> Result<Outcome, String>,
}

/// Every workload, in the order they run.
///
/// ADD NEW WORKLOADS HERE. Planned, not yet written:
/// - undo-log compaction cost (write cost with and without `txu.checkpoint-every`, once that
///   config exists; `compaction` below reports the memory side),
/// - command-filter overhead: `module-loaded` below measures plain SET with the module loaded
///   against `Server::start_without_module()`; once txu registers a command filter, that is the
///   number to watch (and add variants, e.g. inside an open transaction).
///
/// Each is a module here with a `run`: it gets a [`Ctx`] (options, mode, the server with the
/// module loaded; the server is flushed before each workload) and returns an [`Outcome`]: rows
/// for the table and the JSON, and today's value of the [`crate::report::TARGETS`] it measures
/// ([`Outcome::target`]). Use [`crate::measure::throughput_outcome`] for "N clients, pipelined,
/// server CPU per tx and tx/s" workloads and [`crate::measure::interleave`] for anything else
/// measured in rounds.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        id: "ten-set",
        about: "10 SETs of 100 bytes per transaction: MULTI/EXEC vs TXU.BEGIN/QUEUE/EXEC vs \
                TXU.RUN vs EVALSHA (plain, and with a Lua undo) vs the ceiling, server CPU/tx",
        run: ten_set::run,
    },
    Workload {
        id: "script",
        about: "a Lua script doing 10 SETs: EVALSHA alone vs inside TXU.RUN vs TXU.RUN of the \
                10 SETs, server CPU/tx",
        run: script::run,
    },
    Workload {
        id: "mixed",
        about: "10 writes over string/hash/list/set/zset per transaction, MULTI/EXEC vs \
                TXU.BEGIN/QUEUE/EXEC vs TXU.RUN vs the ceiling, server CPU/tx",
        run: mixed::run,
    },
    Workload {
        id: "rollback",
        about: "TXU.EXEC of 1,000 writes: rolled back (last command fails) vs committed, \
                server CPU and latency of the EXEC",
        run: rollback::run,
    },
    Workload {
        id: "big-key",
        about: "one HSET on a 1,000,000-field hash (100,000 in --quick) in a transaction, p50/p99",
        run: big_key::run,
    },
    Workload {
        id: "single",
        about: "single-command transactions (TXU.BEGIN/QUEUE/EXEC, TXU.RUN) vs MULTI/SET/EXEC \
                vs plain SET vs the ceiling, server CPU/tx and extra us",
        run: single::run,
    },
    Workload {
        id: "module-loaded",
        about: "plain SET, server with the module vs server without it, server CPU/op",
        run: module_loaded::run,
    },
    Workload {
        id: "drain",
        about: "100,000 deferred tasks (10,000 in --quick) drained by the timer: tick time, \
                tasks/s, a client's PING latency idle vs during the drain",
        run: drain::run,
    },
    Workload {
        id: "recovery",
        about: "fault cleared -> deferred task applied, vs txu.backoff-base-ms 200",
        run: recovery::run,
    },
    Workload {
        id: "compaction",
        about: "TXU.BEGIN RETAIN: 10,000 INCRs over 10 keys, undo-log memory, TXU.ROLLBACK <txid>",
        run: compaction::run,
    },
    Workload {
        id: "preimage-bytes",
        about:
            "pre-image bytes per write for each type (100 writes on distinct 1,000-element keys)",
        run: preimage_bytes::run,
    },
];

/// A 100-byte value.
pub const VALUE: &[u8] = &[b'v'; 100];

/// `INFO txu` counters of pre-images and undo entries, reported as deltas when the build has
/// them (older builds count entries as `txu_preimages_captured`).
pub const UNDO_COUNTERS: &[&str] = &[
    "txu_preimages_captured",
    "txu_undo_entries_recorded",
    "txu_compactions",
    "txu_compacted_entries",
    "txu_preimage_bytes",
];

/// `MULTI` and each of `cmds`, appended to `out` (the `EXEC` is left to the caller).
pub fn push_multi<A: AsRef<[u8]>>(out: &mut Vec<u8>, cmds: &[Vec<A>]) {
    push_command(out, &[b"MULTI"]);
    for cmd in cmds {
        push_command(out, &cmd.iter().map(AsRef::as_ref).collect::<Vec<_>>());
    }
}

/// A whole `MULTI` … `EXEC` transaction of `cmds`, appended to `out`.
pub fn push_multi_exec<A: AsRef<[u8]>>(out: &mut Vec<u8>, cmds: &[Vec<A>]) {
    push_multi(out, cmds);
    push_command(out, &[b"EXEC"]);
}

/// `TXU.BEGIN <opts>` and `TXU.QUEUE` of each of `cmds`, appended to `out` (the `TXU.EXEC` is
/// left to the caller).
pub fn push_txu_queue<A: AsRef<[u8]>>(out: &mut Vec<u8>, opts: &[&[u8]], cmds: &[Vec<A>]) {
    let mut begin: Vec<&[u8]> = vec![b"TXU.BEGIN"];
    begin.extend_from_slice(opts);
    push_command(out, &begin);
    for cmd in cmds {
        let mut args: Vec<&[u8]> = vec![b"TXU.QUEUE"];
        args.extend(cmd.iter().map(AsRef::as_ref));
        push_command(out, &args);
    }
}

/// A whole txu transaction of `cmds` (`TXU.BEGIN <opts>` … `TXU.EXEC`), appended to `out`.
pub fn push_txu_exec<A: AsRef<[u8]>>(out: &mut Vec<u8>, opts: &[&[u8]], cmds: &[Vec<A>]) {
    push_txu_queue(out, opts, cmds);
    push_command(out, &[b"TXU.EXEC"]);
}

/// `<head> <argc> <command> [arg ...] ...` of `cmds`, appended to `out`: the frames of
/// `TXU.RUN` (and of the ceiling's `TXU._LOOP`).
fn push_frames<A: AsRef<[u8]>>(out: &mut Vec<u8>, head: &[&[u8]], cmds: &[Vec<A>]) {
    let counts: Vec<Vec<u8>> = cmds
        .iter()
        .map(|c| c.len().to_string().into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = head.to_vec();
    for (cmd, n) in cmds.iter().zip(&counts) {
        args.push(n);
        args.extend(cmd.iter().map(AsRef::as_ref));
    }
    push_command(out, &args);
}

/// A whole transaction of `cmds` in one `TXU.RUN <opts>`, appended to `out`.
pub fn push_txu_run<A: AsRef<[u8]>>(out: &mut Vec<u8>, opts: &[&[u8]], cmds: &[Vec<A>]) {
    let mut head: Vec<&[u8]> = vec![b"TXU.RUN"];
    head.extend_from_slice(opts);
    push_frames(out, &head, cmds);
}

/// `cmds` in one `TXU._LOOP` (the ceiling: the same commands through the call API and nothing
/// else; `bench-loop` builds only), appended to `out`.
pub fn push_loop<A: AsRef<[u8]>>(out: &mut Vec<u8>, cmds: &[Vec<A>]) {
    push_frames(out, &[b"TXU._LOOP"], cmds);
}

/// The note of a throughput workload that could not run its ceiling variant.
pub const NO_CEILING: &str = "no ceiling variant: the module has no TXU._LOOP (build it with \
                              --features bench-loop, as `make bench` does)";
