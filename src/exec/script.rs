//! Scripts and functions inside a transaction (`EVAL`, `EVALSHA`, `FCALL` and their `_RO`
//! forms). The server runs the script; txu covers every write it makes, declared key or not:
//! while txu's own call of the script runs, a command filter routes each `redis.call` /
//! `redis.pcall` of the script through `TXU._CALL <command...>`, whose handler takes the
//! command's pre-image (the recipes of any queued write), runs it, and records its undo entries
//! in the transaction's log before it replies to the script. A later failure — the script's
//! own error, or a later command of the transaction — then undoes the script's writes with the
//! rest. A command that txu refuses in a transaction is refused to the script the same way
//! (its call fails, and unless the script catches it, so does the transaction).
//!
//! The script runs as the module (no ACL of its own: the engine would otherwise ask for
//! permission to run `TXU._CALL`), and each command it calls is checked against the ACL of
//! the transaction's user before it runs. The `_RO` forms cannot write: they run unfiltered.

use super::compact::Seen;
use super::txn::Queued;
use super::{exec_one, validate, Acl, Mode};
use crate::error::TxuError;
use crate::ffi::{acl, call, filter, keys, reply, CallReply, CtxPtr, OwnedStr, Str};
use crate::undo::log::UndoLog;
use parking_lot::Mutex;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

/// The command a script's calls are routed through.
pub const CALL_COMMAND: &CStr = c"txu._call";

/// Which script commands a transaction may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// `EVAL`, `EVALSHA`, `FCALL`: its calls are routed through `TXU._CALL`.
    Writes,
    /// `EVAL_RO`, `EVALSHA_RO`, `FCALL_RO`: the server refuses its writes.
    ReadOnly,
}

impl Script {
    /// The kind of script command `name` (lowercase) is, if it is one.
    pub fn of(name: &str) -> Option<Script> {
        match name {
            "eval" | "evalsha" | "fcall" => Some(Script::Writes),
            "eval_ro" | "evalsha_ro" | "fcall_ro" => Some(Script::ReadOnly),
            _ => None,
        }
    }
}

/// A script of a transaction is running: its calls are routed (see [`on_command`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Commands other clients may run while a script is busy (`SCRIPT KILL`, `SHUTDOWN`...): the
/// filter sees those clients' commands too, and leaves these alone (the server answers the
/// others `BUSY`; a script may not call any of these). Read at the first script.
static BUSY_OK: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);
/// `TXU._CALL` is running a command: what it calls itself is not routed again.
static IN_CALL: AtomicBool = AtomicBool::new(false);

/// What `TXU._CALL` needs of the transaction whose script is running: its undo log (lent for
/// the duration of the script), what is known of its keys' encodings, and how its commands
/// run.
struct Scope {
    undo: UndoLog,
    seen: Seen,
    flags: &'static CStr,
    whole_only: bool,
    now: i64,
    /// Whose ACL the script's commands are checked against (its name, for the messages).
    /// Nothing can delete the user while the script runs: `ACL` is denied in scripts, and
    /// other clients get `BUSY`.
    user: OwnedStr,
    handle: Option<acl::UserHandle>,
}

static SCOPE: Mutex<Option<Scope>> = Mutex::new(None);

/// Registers the filter, and reads which commands it must leave alone ([`BUSY_OK`]), at the
/// first script a transaction runs (a server that never runs one never calls it); from then
/// on it costs every command one atomic load while no script of a transaction runs.
fn ensure_filter(ctx: CtxPtr) -> Result<(), String> {
    let mut busy_ok = BUSY_OK.lock();
    if busy_ok.is_none() {
        filter::register_all(ctx, on_command).map_err(|e| {
            TxuError::Internal(format!("cannot run a script in a transaction: {e}")).to_string()
        })?;
        *busy_ok = Some(super::catalog::allow_busy_names(ctx));
    }
    Ok(())
}

/// While a transaction's script runs, each command it calls becomes `TXU._CALL <command...>`.
fn on_command(f: &filter::FilterCtx) {
    if !ACTIVE.load(Ordering::Relaxed) || IN_CALL.load(Ordering::Relaxed) {
        return;
    }
    let Some(name) = f.arg(0) else {
        return;
    };
    // The script command itself (the filter sees txu's call of it), a script that calls
    // TXU._CALL itself, and what other clients may send while the script is busy.
    let own = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if own(CALL_COMMAND.to_bytes())
        || [&b"eval"[..], b"evalsha", b"fcall"].into_iter().any(own)
        || BUSY_OK
            .lock()
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| own(n)))
    {
        return;
    }
    f.insert_front(CALL_COMMAND.to_bytes());
}

/// Runs the script command `q` of a transaction: its calls go through `TXU._CALL`, which
/// records their undo entries in `undo`.
pub(super) fn run(
    ctx: CtxPtr,
    q: &Queued,
    kind: Script,
    undo: &mut UndoLog,
    seen: &mut Seen,
    mode: &Mode<'_>,
    now: i64,
) -> Result<CallReply, String> {
    let argv: Vec<Str<'_>> = q.argv.iter().map(OwnedStr::as_str).collect();
    // The script runs as the module: without a user to check its commands against, it does
    // not run at all.
    let Some(user) = mode.user else {
        return Err(TxuError::Internal(
            "a script in a transaction needs the caller's ACL user, which the server does not give here"
                .into(),
        )
        .to_string());
    };
    // The script command itself, against the transaction's user.
    if acl::allows_user(user, &argv) != Some(true) {
        return Err(no_perm(ctx, user, &argv));
    }
    let args = argv.get(1..).unwrap_or_default();
    // A script that raised an error, or returned one, failed: the transaction rolls back.
    let failed = |r: CallReply| match r.error_text() {
        Some(e) => Err(e),
        None => Ok(r),
    };
    if kind == Script::ReadOnly {
        let r = call::call_argv(ctx, &q.cname, mode.script_flags, args);
        return r.map_err(|e| e.to_string()).and_then(failed);
    }
    ensure_filter(ctx)?;
    // Lend the log to TXU._CALL; take it back however the script ends (a panic included).
    struct Lent<'a> {
        undo: &'a mut UndoLog,
        seen: &'a mut Seen,
    }
    impl Drop for Lent<'_> {
        fn drop(&mut self) {
            ACTIVE.store(false, Ordering::Relaxed);
            if let Some(s) = SCOPE.lock().take() {
                *self.undo = s.undo;
                *self.seen = s.seen;
            }
        }
    }
    *SCOPE.lock() = Some(Scope {
        undo: std::mem::take(undo),
        seen: std::mem::take(seen),
        // Checked against `user` in `call_in` instead of `C` (the script runs as the module,
        // whose calls have no user for `C` to check).
        flags: mode.checked_flags,
        whole_only: mode.whole_only,
        now,
        user: OwnedStr::retain(user.as_str()).ok_or(TxuError::OutOfMemory.to_string())?,
        handle: acl::UserHandle::named(user),
    });
    let lent = Lent { undo, seen };
    ACTIVE.store(true, Ordering::Relaxed);
    let reply = call::call_argv(ctx, &q.cname, mode.script_flags, args);
    drop(lent);
    reply.map_err(|e| e.to_string()).and_then(failed)
}

/// `NOPERM` with the server's own reason for `user`.
fn no_perm(ctx: CtxPtr, user: &OwnedStr, argv: &[Str<'_>]) -> String {
    let why = acl::dryrun_reason_for(ctx, user, argv).unwrap_or_else(|| {
        "this user has no permissions to run one of the script's commands or to access one of \
         its keys"
            .into()
    });
    TxuError::NoPerm(why).to_string()
}

/// `TXU._CALL <command> [arg ...]`: one call of a transaction's script (see the module
/// documentation). Replies what the command replied, or why txu refused it.
pub fn call(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let inner = argv.get(1..).unwrap_or_default();
    if keys::is_keys_position_request(ctx) {
        let command = 1..argv.len();
        super::declare_keys(ctx, argv, std::slice::from_ref(&command));
        return 0;
    }
    if inner.is_empty() {
        return reply::error(ctx, &TxuError::WrongArity("txu._call".into()));
    }
    // Borrow the scope; it goes back however this ends (a panic included).
    struct Borrowed(Option<Scope>);
    impl Drop for Borrowed {
        fn drop(&mut self) {
            IN_CALL.store(false, Ordering::Relaxed);
            if let Some(s) = self.0.take() {
                *SCOPE.lock() = Some(s);
            }
        }
    }
    let mut scope = Borrowed(SCOPE.lock().take());
    let Some(s) = scope.0.as_mut() else {
        return reply::error(ctx, &TxuError::InternalOnly("TXU._CALL"));
    };
    IN_CALL.store(true, Ordering::Relaxed);
    match call_in(ctx, inner, s) {
        Ok(r) => {
            if reply::call_reply(ctx, &r) {
                0
            } else {
                reply::error(ctx, &TxuError::Internal("could not relay a reply".into()))
            }
        }
        Err(e) => reply::error(ctx, &TxuError::Reply(e)),
    }
}

/// Validates, checks and runs one command of the script, recording its undo entries.
fn call_in(ctx: CtxPtr, argv: &[Str<'_>], s: &mut Scope) -> Result<CallReply, String> {
    let q = validate(ctx, argv, Acl::Skip).map_err(|e| match e {
        TxuError::NotAllowed { cmd, reason } => {
            TxuError::NotAllowedInScript { cmd, reason }.to_string()
        }
        other => other.to_string(),
    })?;
    if q.script.is_some() {
        return Err(TxuError::NotAllowedInScript {
            cmd: q.display.to_string(),
            reason: "scripts cannot be nested",
        }
        .to_string());
    }
    // A user that is gone (or a server without the API) allows nothing.
    let allowed = s.handle.as_ref().and_then(|h| h.allows(argv));
    if allowed != Some(true) {
        return Err(no_perm(ctx, &s.user, argv));
    }
    let mode = Mode {
        flags: s.flags,
        checked_flags: s.flags,
        script_flags: s.flags,
        whole_only: s.whole_only,
        user: None,
    };
    let mut args = Vec::new();
    exec_one(ctx, &q, &mut s.undo, &mut s.seen, &mode, s.now, &mut args)
}
