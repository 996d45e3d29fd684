//! `TXU._FAULT` (test builds with the `test-faults` feature only): switches that make txu's
//! own writes fail, so tests can reach the paths a healthy server never takes.

use crate::error::TxuError;
use crate::exec::{self, defer, rollback};
use crate::ffi::{reply, CtxPtr, Str};
use std::ffi::{c_int, CStr};

pub const FAULT_COMMAND: &CStr = c"txu._fault";

/// `TXU._FAULT UNDO <n>`: the next `n` compensating writes fail.
/// `TXU._FAULT NOUSER <0|1>`: the server "cannot name" the caller's ACL user.
/// `TXU._FAULT PANIC <n>`: the next transaction panics just before its command `n` runs.
pub fn fault(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let num = |a: &Str<'_>| {
        std::str::from_utf8(a.bytes())
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
    };
    let done = match argv {
        [_, what, n] if what.bytes().eq_ignore_ascii_case(b"undo") => {
            num(n).map(rollback::fail_next_undo)
        }
        [_, what, n] if what.bytes().eq_ignore_ascii_case(b"nouser") => {
            num(n).map(|n| defer::fault_no_user(n != 0))
        }
        [_, what, n] if what.bytes().eq_ignore_ascii_case(b"panic") => {
            num(n).map(exec::panic_before_command)
        }
        _ => None,
    };
    match done {
        Some(()) => reply::ok(ctx),
        None => reply::error(
            ctx,
            &TxuError::Syntax("TXU._FAULT UNDO <n> | NOUSER <0|1> | PANIC <n>".into()),
        ),
    }
}
