//! The one place for raw Redis module FFI and `unsafe`. Everything above this folder calls
//! safe functions with plain Rust types; every `unsafe` block here says why it is sound.
//!
//! Only what the `redis-module` crate lacks or gets wrong for txu is written by hand:
//! `RedisModule_Call` with an argv vector and call flags, replies forwarded byte for byte with
//! `ReplyWithCallReply` (the crate's conversion is lossy and panics on a NUL byte),
//! `GetCommandKeysWithFlags`, ACL checks by user name, client events, command filters, module
//! data types with txu's own callbacks, and logging (the crate's logger panics on a NUL byte).
//! The crate is used where it does the job: configs, context flags, timers.
//!
//! Every function is safe to call from a command handler, a timer or an event: a missing API
//! pointer (older server) is reported as an error or a neutral value, never as a panic.
//!
//! - `strings`: borrowed ([`Str`]) and owned ([`OwnedStr`]) Redis strings
//! - `call`: calling commands and reading their replies
//! - `reply`: replying to the current client
//! - `keys`: databases, key expiry, type and length, a command's key positions
//! - `configs`: server configs read with `CONFIG GET`, and whether one changed since
//! - `acl`: users and permission checks
//! - `context`: client id, role and state flags, clock, memory, logging, server facts
//! - `events`: server events, keyspace notifications, timers
//! - `filter`: the command filter
//! - `types`: module data types and their persistence callbacks
//! - `register`: commands, ACL categories, command docs, configs, INFO

pub mod acl;
pub mod alloc;
pub mod call;
pub mod clock;
pub mod configs;
pub mod context;
pub mod events;
pub mod filter;
pub mod keys;
pub mod register;
pub mod reply;
pub mod strings;
pub mod types;

pub use call::{CallReply, ReplyKind, ReplyRef};
pub use strings::{OwnedStr, Str};

use redis_module::raw;

pub type CtxPtr = *mut raw::RedisModuleCtx;

/// The `len` bytes at `p` (empty for NULL), as the server hands out text: a pointer into an
/// object it owns, and a length.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that stay unchanged for `'a`.
unsafe fn bytes_at<'a>(p: *const std::ffi::c_char, len: usize) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}
pub type StrPtr = *mut raw::RedisModuleString;

/// Reads a module API pointer: `None` when this server lacks that API.
macro_rules! api {
    ($name:ident) => {
        // SAFETY: the server fills the API table once while loading the module, before any
        // txu code runs, and never writes it again: this is a plain read.
        unsafe { ::redis_module::raw::$name }
    };
}
pub(crate) use api;
