//! Replies to the client of the current command.

use super::call::CallReply;
use super::CtxPtr;
use crate::error::TxuError;
use redis_module::raw;
use std::ffi::{c_int, CStr, CString};

/// Replies with an error. `msg` must start with an error code (`ERR`, `NOPERM`, ...). CR, LF
/// and NUL are replaced so the reply can never break the protocol or the C string.
fn reply_error_text(ctx: CtxPtr, msg: &str) -> c_int {
    let clean: String = msg
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\0' => ' ',
            c => c,
        })
        .collect();
    let c = CString::new(clean).unwrap_or_else(|_| CString::from(c"ERR internal error"));
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { raw::RedisModule_ReplyWithError.map_or(0, |f| f(ctx, c.as_ptr())) }
}

/// Replies with a txu error (its one text, see `error.rs`).
pub fn error(ctx: CtxPtr, e: &TxuError) -> c_int {
    reply_error_text(ctx, &e.to_string())
}

pub fn simple(ctx: CtxPtr, msg: &CStr) -> c_int {
    // SAFETY: msg is a valid C string.
    unsafe { raw::RedisModule_ReplyWithSimpleString.map_or(0, |f| f(ctx, msg.as_ptr())) }
}

pub fn ok(ctx: CtxPtr) -> c_int {
    simple(ctx, c"OK")
}

pub fn bulk(ctx: CtxPtr, bytes: &[u8]) -> c_int {
    // SAFETY: copies `len` bytes.
    unsafe {
        raw::RedisModule_ReplyWithStringBuffer
            .map_or(0, |f| f(ctx, bytes.as_ptr().cast(), bytes.len()))
    }
}

pub fn array(ctx: CtxPtr, len: usize) -> c_int {
    let n = std::os::raw::c_long::try_from(len).unwrap_or(0);
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithArray.map_or(0, |f| f(ctx, n)) }
}

/// A map of `len` key/value pairs for a RESP3 client, a flat array of `2 × len` for RESP2.
pub fn map(ctx: CtxPtr, len: usize) -> c_int {
    let n = std::os::raw::c_long::try_from(len).unwrap_or(0);
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithMap.map_or(0, |f| f(ctx, n)) }
}

pub fn null(ctx: CtxPtr) -> c_int {
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithNull.map_or(0, |f| f(ctx)) }
}

pub fn integer(ctx: CtxPtr, v: i64) -> c_int {
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithLongLong.map_or(0, |f| f(ctx, v)) }
}

/// Forwards a call reply verbatim (same RESP type and bytes as the command would have sent).
/// Returns false if the server refused (protocol mismatch); the caller must then send
/// something else in its place so the client never waits for a missing reply.
pub fn call_reply(ctx: CtxPtr, reply: &CallReply) -> bool {
    // SAFETY: reply is a live top-level reply.
    unsafe {
        raw::RedisModule_ReplyWithCallReply
            .is_some_and(|f| f(ctx, reply.as_ptr()) == raw::REDISMODULE_OK as c_int)
    }
}
