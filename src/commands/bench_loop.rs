//! `TXU._LOOP` (builds with the `bench-loop` feature only): the ceiling `make bench` measures
//! txu against. It takes the frames of `TXU.RUN` (`<argc> <command> [arg ...] ...`) and runs
//! each command through `RedisModule_Call`, and does nothing else: no validation, no
//! pre-images, no undo log, no rollback. What `TXU.RUN` costs beyond it is txu's own work.
//!
//! It uses the call API directly (`ffi::call`), which no other command handler does: it is a
//! measuring stick, not a way into the engine, and never part of a release build.

use super::options;
use crate::error::TxuError;
use crate::ffi::{call, reply, CtxPtr, Str};
use std::ffi::{c_int, CStr, CString};

pub const LOOP_COMMAND: &CStr = c"txu._loop";

/// Replicate (`!`), errors as replies (`E`), the client's protocol (`0`): what `TXU.RUN`
/// passes, less its OOM, ACL and script-mode checks.
const LOOP_FLAGS: &CStr = c"v!E0";

/// `TXU._LOOP <argc> <command> [arg ...] ...` → the array of the commands' replies, each as the
/// command sent it (an error reply in place of a command the server could not call).
pub fn run_loop(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|a| a.bytes()).collect();
    let frames = match options::parse_run(&args) {
        Ok(f) if f.retry.is_none() && f.retain_ms.is_none() => f,
        Ok(_) => return reply::error(ctx, &TxuError::Syntax("TXU._LOOP takes no options".into())),
        Err(e) => return reply::error(ctx, &e),
    };
    let replies: Vec<Result<call::CallReply, TxuError>> = frames
        .commands
        .iter()
        .map(|range| {
            // The arguments after `TXU._LOOP` start at 1 in argv.
            let cmd = argv.get(range.start + 1..range.end + 1).unwrap_or(&[]);
            let (name, rest) = cmd
                .split_first()
                .ok_or_else(|| TxuError::Syntax("empty command".into()))?;
            let cname = CString::new(name.bytes()).map_err(|_| {
                TxuError::UnknownCommand(String::from_utf8_lossy(name.bytes()).into())
            })?;
            call::call_argv(ctx, &cname, LOOP_FLAGS, rest)
        })
        .collect();
    reply::array(ctx, replies.len());
    for r in &replies {
        match r {
            Ok(r) => {
                if !reply::call_reply(ctx, r) {
                    reply::null(ctx);
                }
            }
            Err(e) => {
                reply::error(ctx, e);
            }
        }
    }
    0
}
