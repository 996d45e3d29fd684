//! The executor: validates commands at queue time, runs a transaction through
//! `RedisModule_Call`, takes pre-images before each write and rolls back on failure.

pub mod admin;
pub mod catalog;
pub mod check;
pub mod cluster;
mod compact;
pub mod conflict;
pub mod defer;
pub mod policy;
mod preimage;
pub mod replay;
pub mod rollback;
pub mod script;
pub mod txn;

use crate::error::{quote, TxuError};
use crate::ffi::{acl, call, context, keys, CallReply, CtxPtr, OwnedStr, ReplyKind, ReplyRef, Str};
use crate::stats::{add, STATS};
use crate::undo::log::UndoLog;
use catalog::{CmdInfo, KeyWrites};
use preimage::prepare;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use txn::{Positions, Queued, Tx};

/// Whose ACL `validate` checks.
#[derive(Clone, Copy)]
pub enum Acl<'u> {
    /// The client running the command (`TXU.QUEUE`).
    Caller,
    /// The client running the command, whose user was looked up once for several commands
    /// (`TXU.RUN`).
    User(&'u acl::UserHandle),
    /// Nobody: the caller checks a stored user itself (the timer has no client, and asking the
    /// server for the current user there crashes Redis 7.0).
    Skip,
}

/// Checks a command before it is queued (`argv[0]` is its name) and builds its queue entry.
/// Nothing runs; the only server calls are `COMMAND INFO` (cached), key lookups and ACL checks.
pub fn validate(ctx: CtxPtr, argv: &[Str<'_>], who: Acl<'_>) -> Result<Queued, TxuError> {
    let Some(&name_arg) = argv.first() else {
        return Err(TxuError::WrongArity("txu.queue".into()));
    };
    let name = name_arg.bytes();
    let top = catalog::lookup(ctx, name).ok_or_else(|| TxuError::UnknownCommand(quote(name)))?;
    let info = if top.subcommands.is_empty() {
        top.clone()
    } else {
        let Some(&sub_arg) = argv.get(1) else {
            return Err(TxuError::WrongArity(top.name.clone()));
        };
        let sub = sub_arg.bytes().to_ascii_lowercase();
        top.subcommands
            .get(&sub)
            .cloned()
            .ok_or_else(|| TxuError::UnknownSubcommand {
                cmd: top.name.to_ascii_uppercase(),
                sub: quote(&sub),
            })?
    };
    if !info.arity_ok(argv.len()) {
        return Err(TxuError::WrongArity(info.name.clone()));
    }
    // The command exists and its arity is right: the server's key lookup cannot refuse it.
    // One key at a fixed place: what the server would say (with no flags, as it does).
    let fixed = info.fixed_key.filter(|&p| p < argv.len());
    let keys = match fixed {
        Some(_) => Vec::new(),
        None => keys::command_keys(ctx, argv),
    };
    let key_count = if fixed.is_some() { 1 } else { keys.len() };
    let args: Vec<&[u8]> = if policy::reads_args(&top.name) {
        argv.iter().skip(1).map(|a| a.bytes()).collect()
    } else {
        Vec::new()
    };
    policy::check(&top.name, &info.traits, &args, key_count).map_err(|r| TxuError::NotAllowed {
        cmd: info.display.to_string(),
        reason: r.reason(),
    })?;
    let allowed = match who {
        Acl::Caller => acl::allows(ctx, argv),
        Acl::User(u) => u.allows(argv),
        Acl::Skip => None,
    };
    if allowed == Some(false) {
        let why = acl::dryrun_reason(ctx, argv).unwrap_or_else(|| {
            format!(
                "this user has no permissions to run the '{}' command or to access one of its keys",
                info.name
            )
        });
        return Err(TxuError::NoPerm(why));
    }

    let (all_keys, write_keys) = match fixed {
        Some(p) => (Positions::one(p), written_key(&info, p)),
        None => (
            keys.iter().map(|&(p, _)| p).collect(),
            written_keys(ctx, argv, &info, keys),
        ),
    };
    let mut owned = Vec::with_capacity(argv.len());
    for &a in argv {
        owned.push(OwnedStr::retain(a).ok_or_else(|| TxuError::Internal("null argument".into()))?);
    }
    let string_key = info.string_key && *write_keys == [1];
    Ok(Queued {
        argv: owned,
        cname: top.cname.clone(),
        display: info.display.clone(),
        string_key,
        write_keys,
        keys: all_keys,
        denyoom: info.traits.denyoom,
        write: info.traits.write,
        undo_own_failure: info.traits.module,
        check: None,
        script: script::Script::of(&top.name),
    })
}

/// Whether `argv` is a `TXU.CHECK`.
pub fn is_check(argv: &[Str<'_>]) -> bool {
    argv.first()
        .is_some_and(|n| n.bytes().eq_ignore_ascii_case(check::NAME))
}

/// Checks a command or a `TXU.CHECK` guard that would be command `position` (0-based) of a
/// transaction whose queued commands are `earlier`, and builds its queue entry.
pub fn validate_at(
    ctx: CtxPtr,
    argv: &[Str<'_>],
    earlier: &[Queued],
    who: Acl<'_>,
) -> Result<Queued, TxuError> {
    if !is_check(argv) {
        return validate(ctx, argv, who);
    }
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|a| a.bytes()).collect();
    let checks: Vec<bool> = earlier.iter().map(|q| q.check.is_some()).collect();
    let parsed = check::parse(&args, earlier.len(), &checks)?;
    let mut owned = Vec::with_capacity(argv.len());
    for &a in argv {
        owned.push(OwnedStr::retain(a).ok_or_else(|| TxuError::Internal("null argument".into()))?);
    }
    static CHECK_NAMES: std::sync::LazyLock<(Arc<CStr>, Arc<str>)> =
        std::sync::LazyLock::new(|| (Arc::from(c"txu.check"), Arc::from("TXU.CHECK")));
    Ok(Queued {
        argv: owned,
        cname: CHECK_NAMES.0.clone(),
        display: CHECK_NAMES.1.clone(),
        string_key: false,
        write_keys: Positions::default(),
        keys: Positions::default(),
        denyoom: false,
        write: false,
        undo_own_failure: false,
        check: Some(parsed),
        script: None,
    })
}

/// What one command of a transaction replied: the command's own reply, or a true check.
pub enum Reply {
    Call(CallReply),
    CheckHeld,
}

/// A reply as a check sees it.
fn seen(r: ReplyRef<'_>) -> check::Seen<'_> {
    use check::Seen;
    match r.kind() {
        ReplyKind::String | ReplyKind::Error => Seen::Text(r.bytes()),
        ReplyKind::Verbatim | ReplyKind::BigNumber => Seen::Text(r.text()),
        ReplyKind::Integer => Seen::Int(r.integer()),
        ReplyKind::Double => Seen::Double(r.double()),
        ReplyKind::Null => Seen::Nil,
        _ => Seen::Other,
    }
}

/// Positions of the keys a command may change, whose pre-images must be taken. Write commands
/// and commands with a writing key spec (PFCOUNT updates its cache) qualify; when some of the
/// command's keys are only read (SUNIONSTORE's sources), `COMMAND GETKEYSANDFLAGS` tells which,
/// since `GetCommandKeysWithFlags` leaves the flags empty on the servers we support.
fn written_keys(
    ctx: CtxPtr,
    argv: &[Str<'_>],
    info: &CmdInfo,
    keys: Vec<(usize, u32)>,
) -> Positions {
    if !info.traits.write && info.key_writes == KeyWrites::None {
        return Positions::default();
    }
    let mut positions = Positions::default();
    let flagged = keys.iter().all(|&(_, f)| f != 0);
    // Key names the server says may change, when only some keys do and the flags above are
    // missing. Matched by name: the two APIs may list keys in different orders.
    let by_server: Option<Vec<(Vec<u8>, bool)>> =
        (!flagged && info.key_writes == KeyWrites::Mixed && keys.len() > 1)
            .then(|| key_write_flags(ctx, argv))
            .flatten();
    for (pos, flags) in keys {
        let writes = if flagged {
            flags & keys::KEY_WRITES != 0
        } else if let Some(named) = &by_server {
            let name = argv.get(pos).map_or(&[][..], |a| a.bytes());
            let mut seen = named
                .iter()
                .filter(|(k, _)| k.as_slice() == name)
                .peekable();
            // A key the server did not list is taken to be written.
            seen.peek().is_none() || seen.any(|(_, w)| *w)
        } else {
            true
        };
        if writes && !positions.contains(&pos) {
            positions.push(pos);
        }
    }
    positions
}

/// [`written_keys`] of a command whose one key is at `p` (no flags, one key: written unless
/// the command writes nothing).
fn written_key(info: &CmdInfo, p: usize) -> Positions {
    if !info.traits.write && info.key_writes == KeyWrites::None {
        Positions::default()
    } else {
        Positions::one(p)
    }
}

/// `COMMAND GETKEYSANDFLAGS <argv>`: each key and whether it may change.
fn key_write_flags(ctx: CtxPtr, argv: &[Str<'_>]) -> Option<Vec<(Vec<u8>, bool)>> {
    let sub = OwnedStr::create(b"GETKEYSANDFLAGS")?;
    let mut args = Vec::with_capacity(argv.len() + 1);
    args.push(sub.as_str());
    args.extend_from_slice(argv);
    let r = call::call_argv(ctx, c"COMMAND", c"vE", &args).ok()?;
    let r = r.as_ref();
    if r.kind() != ReplyKind::Array {
        return None;
    }
    let mut out = Vec::with_capacity(r.len());
    for i in 0..r.len() {
        let entry = r.elem(i)?;
        let name = entry.elem(0)?.bytes().to_vec();
        let flags = entry.elem(1)?;
        let writes = (0..flags.len()).any(|j| {
            flags
                .elem(j)
                .is_some_and(|f| catalog::is_write_flag(f.bytes()))
        });
        out.push((name, writes));
    }
    Some(out)
}

/// Runs a transaction's commands in order. On success, their replies in order (and, with
/// `RETAIN`, the undo log stored). On the first error reply, every earlier write is undone and
/// the error says which command failed and why.
pub fn run(ctx: CtxPtr, tx: &Tx) -> Result<Vec<Reply>, TxuError> {
    // A read-only replica takes no writes, and keeps no task or undo log of its own (they
    // would live only here, and vanish at the next resync): refused before anything runs.
    if (tx.retry.is_some() || tx.retain_ms.is_some() || tx.queued.iter().any(|q| q.write))
        && context::is_readonly_replica(ctx)
    {
        return Err(TxuError::ReadOnly);
    }
    // A transaction that may be deferred must know whose it is before anything runs.
    if tx.retry.is_some() && defer::submitter(ctx).is_none() {
        return Err(TxuError::NoUser);
    }
    let db = keys::selected_db(ctx);
    // A transaction never overtakes an earlier deferred task on one of its keys.
    if let Some((task, key)) = defer::blocking_task(db, &tx.queued) {
        let Some(max) = tx.retry else {
            return Err(TxuError::Pending {
                key: quote(&key),
                task,
            });
        };
        let why = format!(
            "waiting behind deferred task {task} on key '{}'",
            quote(&key)
        );
        return match defer::defer(ctx, tx, db, max, &why, false) {
            Ok(()) => Err(defer::deferred(&tx.id, &why)),
            Err(e) => Err(TxuError::Internal(format!("could not defer: {e}"))),
        };
    }
    let marks = conflict::buffer();
    let mut undo = UndoLog::new();
    // A retained transaction may be undone long after, over later changes (FORCE): only
    // whole-key pre-images put its keys back exactly, so it pays for them.
    let whole = tx.retain_ms.is_some();
    // TXU.RUN checked every command against the caller's ACL a moment ago, in this same
    // command: no other client ran since, and no command of a transaction can change the ACL
    // (ACL, AUTH and HELLO are refused), so the calls skip a second check. A transaction
    // queued with TXU.QUEUE may meet an ACL changed since: its calls check again, as EXEC does.
    let flags = if tx.acl_checked {
        call::RUN_FLAGS_CHECKED
    } else {
        call::RUN_FLAGS
    };
    // A script's commands are checked against the caller's ACL as they run (see `script`).
    let user = tx
        .queued
        .iter()
        .any(|q| q.script.is_some())
        .then(|| acl::current_user(ctx))
        .flatten();
    let mode = Mode {
        flags,
        checked_flags: call::RUN_FLAGS_CHECKED,
        script_flags: call::SCRIPT_FLAGS,
        whole_only: whole,
        user: user.as_ref(),
    };
    let result = run_with(ctx, &tx.queued, &mut undo, &mode);
    let meta = rollback::TxMeta { txid: &tx.id, db };
    match result {
        Ok(replies) => {
            marks.finish(ctx, true);
            if let Some(ms) = tx.retain_ms {
                if let Err(e) = rollback::retain(ctx, meta, &undo, ms) {
                    context::log_warning(ctx, &format!("txu: could not retain {}: {e}", tx.id));
                }
            }
            Ok(replies)
        }
        Err(Failed { index, cmd, cause }) => {
            let err = rollback::after_failure(ctx, meta, &undo, index, cmd, cause.clone());
            // Deferred only once the rollback is complete: a retry must start from the state
            // before the transaction.
            match (tx.retry, &err) {
                (Some(max), TxuError::RolledBack { .. }) if defer::is_transient(&cause) => {
                    match defer::defer(ctx, tx, db, max, &cause, true) {
                        Ok(()) => Err(defer::deferred(&tx.id, &cause)),
                        Err(e) => {
                            context::log_warning(
                                ctx,
                                &format!("txu: could not defer {}: {e}", tx.id),
                            );
                            Err(err)
                        }
                    }
                }
                _ => Err(err),
            }
        }
    }
}

/// The command that failed: its 1-based position, name and error.
pub(crate) struct Failed<'a> {
    pub index: usize,
    pub cmd: &'a str,
    pub cause: String,
}

/// How a transaction's commands run.
pub(crate) struct Mode<'u> {
    /// `RedisModule_Call` flags of its commands.
    pub flags: &'static CStr,
    /// The same without the ACL check (`C`), for commands whose ACL txu checks itself (those
    /// of its scripts: see `script`).
    pub checked_flags: &'static CStr,
    /// And of its script commands (`EVAL`, `FCALL`...).
    pub script_flags: &'static CStr,
    /// Whole-key pre-images only (see `preimage::prepare`).
    pub whole_only: bool,
    /// Whose ACL the commands of its scripts are checked against.
    pub user: Option<&'u OwnedStr>,
}

/// Runs one command of a transaction: its pre-image, the call, its undo entries. `args`: a
/// buffer for the call's arguments.
pub(crate) fn exec_one<'q>(
    ctx: CtxPtr,
    q: &'q Queued,
    undo: &mut UndoLog,
    seen: &mut compact::Seen,
    mode: &Mode<'_>,
    now: i64,
    args: &mut Vec<Str<'q>>,
) -> Result<CallReply, String> {
    if crate::undo::recipe::is_rename(q.cname.to_bytes()) {
        seen.renamed();
    }
    let prepared = prepare(ctx, q, undo, mode.whole_only, now, seen).map_err(|e| e.to_string())?;
    args.clear();
    args.extend(q.argv.iter().skip(1).map(OwnedStr::as_str));
    let reply = call::call_argv(ctx, &q.cname, mode.flags, args).map_err(|e| e.to_string())?;
    if let Some(e) = reply.error_text() {
        // A core command that fails has changed nothing: undoing it would only write (on a
        // read-only replica, diverge). Other modules' commands may fail half-way.
        if q.undo_own_failure {
            if let Some(p) = prepared {
                p.record(undo, None);
            }
        }
        return Err(e);
    }
    if let Some(p) = prepared {
        p.record(undo, Some(reply.as_ref()));
    }
    Ok(reply)
}

pub(crate) fn run_with<'a>(
    ctx: CtxPtr,
    queued: &'a [Queued],
    undo: &mut UndoLog,
    mode: &Mode<'_>,
) -> Result<Vec<Reply>, Failed<'a>> {
    let mut replies: Vec<Reply> = Vec::with_capacity(queued.len());
    let mut args: Vec<Str<'_>> = Vec::new();
    // One clock read per transaction: the server itself freezes its clock for the commands a
    // module calls within one command (expiry decisions use the time the command started).
    let now = context::now_ms();
    // What is known of the keys' encodings (see `compact::compact_keys`).
    let mut seen_encodings = compact::Seen::default();
    for (i, q) in queued.iter().enumerate() {
        // A bug (a panic) in the middle of a transaction still rolls back what ran: the
        // command's step fails like a command that replied an error.
        if let Some(c) = &q.check {
            // A guard reads nothing and writes nothing: it looks at an earlier reply.
            let target = replies.get(c.target).and_then(|r| match r {
                Reply::Call(r) => Some(r),
                Reply::CheckHeld => None,
            });
            let name = queued.get(c.target).map_or("?", |t| &*t.display);
            let seen_now = target.map_or(check::Seen::Other, |r| seen(r.as_ref()));
            if c.holds(&seen_now) {
                replies.push(Reply::CheckHeld);
                continue;
            }
            add(&STATS.commands_executed, i as u64 + 1);
            return Err(Failed {
                index: i + 1,
                cmd: &q.display,
                cause: c.failure(name, &seen_now),
            });
        }
        let step = catch_unwind(AssertUnwindSafe(|| {
            injected_panic(i + 1);
            match q.script {
                Some(kind) => script::run(ctx, q, kind, undo, &mut seen_encodings, mode, now),
                None => exec_one(ctx, q, undo, &mut seen_encodings, mode, now, &mut args),
            }
        }))
        .unwrap_or_else(|_| {
            context::log_warning(
                ctx,
                &format!(
                    "txu: internal error (panic) running command {}; rolling back",
                    i + 1
                ),
            );
            Err(TxuError::Panic.to_string())
        });
        match step {
            Ok(reply) => replies.push(Reply::Call(reply)),
            Err(cause) => {
                add(&STATS.commands_executed, i as u64 + 1);
                drop(replies);
                let cause = explain_acl_failure(ctx, q, cause);
                return Err(Failed {
                    index: i + 1,
                    cmd: &q.display,
                    cause,
                });
            }
        }
    }
    add(&STATS.commands_executed, queued.len() as u64);
    Ok(replies)
}

/// Test builds only: the command (1-based) before which the next transaction panics.
#[cfg(feature = "test-faults")]
static PANIC_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Test builds only: the next transaction panics just before its command `n` runs.
#[cfg(feature = "test-faults")]
pub fn panic_before_command(n: i64) {
    PANIC_AT.store(n, std::sync::atomic::Ordering::Relaxed);
}

fn injected_panic(_command: usize) {
    #[cfg(feature = "test-faults")]
    {
        use std::sync::atomic::Ordering;
        let at = i64::try_from(_command).unwrap_or(i64::MAX);
        if PANIC_AT
            .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            panic!("txu test fault: panic before command {at}");
        }
    }
}

/// Redis 7.0 reports a failed ACL check of a module's call as `ERR acl verification failed`;
/// clients expect `NOPERM` and the server's reason, which `ACL DRYRUN` gives.
fn explain_acl_failure(ctx: CtxPtr, q: &Queued, cause: String) -> String {
    if !cause.starts_with("ERR acl verification failed") {
        return cause;
    }
    let argv: Vec<Str<'_>> = q.argv.iter().map(OwnedStr::as_str).collect();
    match acl::dryrun_reason(ctx, &argv) {
        Some(why) => format!("NOPERM {why}"),
        None => format!("NOPERM {}", cause.trim_start_matches("ERR ")),
    }
}

/// What `INFO txu` reports of the state txu holds now.
pub struct Gauges {
    pub open_transactions: u64,
    pub retained_logs: u64,
    pub pending_rollbacks: u64,
    pub undo_log_bytes: u64,
    pub tasks: crate::store::tasklist::Counts,
}

pub fn gauges() -> Gauges {
    let (retained, pending, bytes) = crate::store::undolog::counts(context::now_ms());
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    Gauges {
        open_transactions: n(txn::open_count()),
        retained_logs: n(retained),
        pending_rollbacks: n(pending),
        undo_log_bytes: n(bytes),
        tasks: crate::store::tasklist::counts(context::now_ms()),
    }
}

/// Declares the keys of `TXU.RUN`'s inner commands (a keys-position request: cluster routing,
/// `COMMAND GETKEYS`, the server's ACL key checks). `argv` is the whole `TXU.RUN` command and
/// `commands` the index ranges of each inner command in it. The flags say which keys a
/// command only reads, so a user allowed only to read a key may still read it here.
pub fn declare_keys(ctx: CtxPtr, argv: &[Str<'_>], commands: &[std::ops::Range<usize>]) {
    for range in commands {
        let Some(cmd) = argv.get(range.clone()) else {
            continue;
        };
        let read_only = cmd
            .first()
            .and_then(|name| catalog::cached(name.bytes()))
            .is_some_and(|info| !info.traits.write && info.key_writes == KeyWrites::None);
        for (pos, flags) in keys::command_keys(ctx, cmd) {
            let flags = if flags != 0 {
                flags
            } else if read_only {
                keys::KEY_READ
            } else {
                keys::KEY_READ_WRITE
            };
            keys::declare_key(ctx, range.start + pos, flags);
        }
    }
}
