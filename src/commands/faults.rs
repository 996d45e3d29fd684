//! `TXU._FAULT` (test builds with the `test-faults` feature only): switches that make txu's
//! own writes fail, so tests can reach the paths a healthy server never takes.

use crate::error::TxuError;
use crate::exec::rollback;
use crate::ffi::{reply, CtxPtr, Str};
use std::ffi::{c_int, CStr};

pub const FAULT_COMMAND: &CStr = c"txu._fault";

/// `TXU._FAULT UNDO <n>`: the next `n` compensating writes fail.
pub fn fault(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let n = match argv {
        [_, what, n] if what.bytes().eq_ignore_ascii_case(b"undo") => {
            std::str::from_utf8(n.bytes())
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
        }
        _ => None,
    };
    match n {
        Some(n) => {
            rollback::fail_next_undo(n);
            reply::ok(ctx)
        }
        None => reply::error(ctx, &TxuError::Syntax("TXU._FAULT UNDO <n>".into())),
    }
}
