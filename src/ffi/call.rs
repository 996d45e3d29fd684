//! Calling commands through `RedisModule_Call` and reading what they reply. The crate's
//! `Context::call_ext` turns replies into its own values, which loses RESP types and panics on
//! a NUL byte (see README "Platform notes"); txu forwards replies byte for byte instead, so it
//! keeps the raw reply and reads it through these accessors.

use super::strings::{ptrs, OwnedStr, Str};
use crate::error::TxuError;
use redis_module::raw;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};

/// The kinds of reply a call can give (the subset we branch on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    String,
    Error,
    Integer,
    Array,
    Null,
    Map,
    Set,
    Bool,
    Double,
    BigNumber,
    Verbatim,
    Other,
}

/// A reply element that belongs to a parent reply (not freed on its own).
#[derive(Clone, Copy)]
pub struct ReplyRef<'a> {
    ptr: *mut raw::RedisModuleCallReply,
    _parent: std::marker::PhantomData<&'a ()>,
}

impl<'a> ReplyRef<'a> {
    pub fn kind(&self) -> ReplyKind {
        // SAFETY: ptr is a live reply owned by the parent.
        let t = unsafe { raw::RedisModule_CallReplyType.map_or(-1, |f| f(self.ptr)) } as isize;
        match t {
            raw::REDISMODULE_REPLY_STRING => ReplyKind::String,
            raw::REDISMODULE_REPLY_ERROR => ReplyKind::Error,
            raw::REDISMODULE_REPLY_INTEGER => ReplyKind::Integer,
            raw::REDISMODULE_REPLY_ARRAY => ReplyKind::Array,
            raw::REDISMODULE_REPLY_NULL => ReplyKind::Null,
            raw::REDISMODULE_REPLY_MAP => ReplyKind::Map,
            raw::REDISMODULE_REPLY_SET => ReplyKind::Set,
            raw::REDISMODULE_REPLY_BOOL => ReplyKind::Bool,
            raw::REDISMODULE_REPLY_DOUBLE => ReplyKind::Double,
            raw::REDISMODULE_REPLY_BIG_NUMBER => ReplyKind::BigNumber,
            raw::REDISMODULE_REPLY_VERBATIM_STRING => ReplyKind::Verbatim,
            _ => ReplyKind::Other,
        }
    }

    /// The text of a string, status or error reply (empty for other kinds).
    pub fn bytes(&self) -> &'a [u8] {
        let Some(f) = super::api!(RedisModule_CallReplyStringPtr) else {
            return &[];
        };
        let mut len = 0usize;
        // SAFETY: CallReplyStringPtr returns a pointer into the reply and its length, valid
        // while the reply (`'a`) lives.
        unsafe { super::bytes_at(f(self.ptr, &mut len), len) }
    }

    pub fn integer(&self) -> i64 {
        // SAFETY: ptr is a live reply.
        unsafe { raw::RedisModule_CallReplyInteger.map_or(0, |f| f(self.ptr)) }
    }

    pub fn len(&self) -> usize {
        // SAFETY: ptr is a live reply.
        unsafe { raw::RedisModule_CallReplyLength.map_or(0, |f| f(self.ptr)) }
    }

    pub fn double(&self) -> f64 {
        // SAFETY: ptr is a live reply.
        unsafe { raw::RedisModule_CallReplyDouble.map_or(0.0, |f| f(self.ptr)) }
    }

    pub fn boolean(&self) -> bool {
        // SAFETY: ptr is a live reply.
        unsafe { raw::RedisModule_CallReplyBool.is_some_and(|f| f(self.ptr) != 0) }
    }

    /// The digits of a big number, or the text of a verbatim string.
    pub fn text(&self) -> &'a [u8] {
        // SAFETY: the returned pointers point into the reply, valid while it lives.
        unsafe {
            let mut len = 0usize;
            let p = match self.kind() {
                ReplyKind::BigNumber => raw::RedisModule_CallReplyBigNumber
                    .map_or(ptr::null(), |f| f(self.ptr, &mut len)),
                ReplyKind::Verbatim => {
                    let mut fmt: *const c_char = ptr::null();
                    raw::RedisModule_CallReplyVerbatim
                        .map_or(ptr::null(), |f| f(self.ptr, &mut len, &mut fmt))
                }
                _ => return self.bytes(),
            };
            super::bytes_at(p, len)
        }
    }

    /// Element `i` of a set reply.
    pub fn set_elem(&self, i: usize) -> Option<ReplyRef<'a>> {
        if i >= self.len() {
            return None;
        }
        // SAFETY: bounds checked; the element is owned by this reply.
        let p = unsafe { raw::RedisModule_CallReplySetElement.map(|f| f(self.ptr, i))? };
        (!p.is_null()).then_some(ReplyRef {
            ptr: p,
            _parent: std::marker::PhantomData,
        })
    }

    /// Entry `i` (key, value) of a map reply.
    pub fn map_elem(&self, i: usize) -> Option<(ReplyRef<'a>, ReplyRef<'a>)> {
        if i >= self.len() {
            return None;
        }
        let mut k: *mut raw::RedisModuleCallReply = ptr::null_mut();
        let mut v: *mut raw::RedisModuleCallReply = ptr::null_mut();
        // SAFETY: bounds checked; key and value are owned by this reply.
        let rc = unsafe {
            raw::RedisModule_CallReplyMapElement.map(|f| f(self.ptr, i, &mut k, &mut v))?
        };
        if rc != raw::REDISMODULE_OK as c_int || k.is_null() || v.is_null() {
            return None;
        }
        let wrap = |p| ReplyRef {
            ptr: p,
            _parent: std::marker::PhantomData,
        };
        Some((wrap(k), wrap(v)))
    }

    /// True for an array (or set) reply with no elements.
    pub fn is_empty_array(&self) -> bool {
        matches!(self.kind(), ReplyKind::Array | ReplyKind::Set) && self.len() == 0
    }

    /// Element `i` of an array reply, if there is one.
    pub fn elem(&self, i: usize) -> Option<ReplyRef<'a>> {
        if i >= self.len() {
            return None;
        }
        // SAFETY: bounds checked above; the element is owned by this reply.
        let p = unsafe { raw::RedisModule_CallReplyArrayElement.map(|f| f(self.ptr, i))? };
        (!p.is_null()).then_some(ReplyRef {
            ptr: p,
            _parent: std::marker::PhantomData,
        })
    }
}

/// A reply we own, freed on drop.
pub struct CallReply(NonNull<raw::RedisModuleCallReply>);

impl CallReply {
    pub fn as_ref(&self) -> ReplyRef<'_> {
        ReplyRef {
            ptr: self.0.as_ptr(),
            _parent: std::marker::PhantomData,
        }
    }

    pub fn is_error(&self) -> bool {
        self.as_ref().kind() == ReplyKind::Error
    }

    /// The error text, lossily decoded, if this is an error reply.
    pub fn error_text(&self) -> Option<String> {
        self.is_error()
            .then(|| String::from_utf8_lossy(self.as_ref().bytes()).into_owned())
    }

    /// The error reply as a [`TxuError`] (the server's own words), if this is one.
    pub fn error(&self) -> Option<TxuError> {
        self.error_text().map(TxuError::Reply)
    }

    pub(super) fn as_ptr(&self) -> *mut raw::RedisModuleCallReply {
        self.0.as_ptr()
    }
}

impl Drop for CallReply {
    fn drop(&mut self) {
        // SAFETY: we own this top-level reply.
        unsafe {
            if let Some(f) = raw::RedisModule_FreeCallReply {
                f(self.0.as_ptr());
            }
        }
    }
}

fn wrap_reply(p: *mut raw::RedisModuleCallReply) -> Result<CallReply, TxuError> {
    match NonNull::new(p) {
        Some(nn) => Ok(CallReply(nn)),
        None => Err(TxuError::CallRefused(
            std::io::Error::last_os_error().to_string(),
        )),
    }
}

/// Flags passed to `RedisModule_Call` for queued commands: replicate (`!`), errors as
/// replies (`E`), check OOM for deny-oom commands (`M`), check the caller's ACL on the
/// command and its keys (`C`), script mode (`S`: refuses writes when min-replicas or disk
/// persistence fail, and on read-only replicas), reply in the client's protocol (`0`).
pub const RUN_FLAGS: &CStr = c"v!EMCS0";

/// [`RUN_FLAGS`] without the ACL check (`C`), for commands whose ACL check was made within
/// the same server command, with nothing able to change the ACL in between (`TXU.RUN`).
pub const RUN_FLAGS_CHECKED: &CStr = c"v!EMS0";

/// For a transaction's script command (`EVAL`, `FCALL`...): as [`RUN_FLAGS`] but without
/// script mode (`S`: these commands are denied in scripts, so script mode refuses them; the
/// script's own commands run with `S`) and without the ACL check (`C`: the script runs as the
/// module, each of its commands is checked against the transaction's user; see
/// `exec::script`).
pub const SCRIPT_FLAGS: &CStr = c"v!EM0";

/// Calls `name` with `args` (argv without the command name) and `fmt` (must start with `v`).
pub fn call_argv(
    ctx: super::CtxPtr,
    name: &CStr,
    fmt: &CStr,
    args: &[Str<'_>],
) -> Result<CallReply, TxuError> {
    let f = super::api!(RedisModule_Call).ok_or(TxuError::MissingApi("RedisModule_Call"))?;
    let short = OneByOne::new(fmt, args.len());
    let p = match (short.as_ref(), args) {
        // SAFETY (each arm): the format holds one `s` per argument, each a live string
        // (borrowed); the flags after it are `fmt`'s.
        (Some(s), [a]) => unsafe { f(ctx, name.as_ptr(), s.as_ptr(), a.as_ptr()) },
        (Some(s), [a, b]) => unsafe { f(ctx, name.as_ptr(), s.as_ptr(), a.as_ptr(), b.as_ptr()) },
        (Some(s), [a, b, c]) => unsafe {
            f(
                ctx,
                name.as_ptr(),
                s.as_ptr(),
                a.as_ptr(),
                b.as_ptr(),
                c.as_ptr(),
            )
        },
        (Some(s), [a, b, c, d]) => unsafe {
            let (a, b, c, d) = (a.as_ptr(), b.as_ptr(), c.as_ptr(), d.as_ptr());
            f(ctx, name.as_ptr(), s.as_ptr(), a, b, c, d)
        },
        // SAFETY: `v` takes a `RedisModuleString**` and a `size_t` count; every string in
        // `args` is alive (borrowed). Call does not keep the array.
        _ => unsafe { f(ctx, name.as_ptr(), fmt.as_ptr(), ptrs(args), args.len()) },
    };
    wrap_reply(p)
}

/// Most arguments a call passes one by one (`s` each) rather than as a vector (`v`).
const ONE_BY_ONE: usize = 4;

/// The format of a call of 1..=[`ONE_BY_ONE`] arguments with each passed on its own (`ss...`)
/// and the flags of a `v` format: the server sizes its argument array from the format, where
/// a vector makes it grow the array a second time (a reallocation per call, measured at
/// about 2 % of a 10-`SET` transaction's server time). `None`: use `fmt` as it is.
struct OneByOne([u8; 24]);

impl OneByOne {
    fn new(fmt: &CStr, argc: usize) -> Option<OneByOne> {
        let flags = fmt.to_bytes().strip_prefix(b"v")?;
        if argc == 0 || argc > ONE_BY_ONE || argc + flags.len() >= 24 {
            return None;
        }
        let mut buf = [0u8; 24];
        let (head, tail) = buf.split_at_mut(argc);
        head.fill(b's');
        tail.get_mut(..flags.len())?.copy_from_slice(flags);
        Some(OneByOne(buf))
    }

    /// The NUL-terminated format (the buffer's zeros end it).
    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// `DUMP key` (no replication, no ACL): the serialized value, or `None` if the key is absent.
pub fn dump(ctx: super::CtxPtr, key: Str<'_>) -> Result<Option<Vec<u8>>, TxuError> {
    let r = call_argv(ctx, c"DUMP", c"vE", &[key])?;
    match r.as_ref().kind() {
        ReplyKind::String => Ok(Some(r.as_ref().bytes().to_vec())),
        ReplyKind::Null => Ok(None),
        _ => Err(r
            .error()
            .unwrap_or_else(|| TxuError::Internal("unexpected DUMP reply".into()))),
    }
}

/// Calls a fixed command with string arguments (no replication, RESP2). For introspection
/// such as `COMMAND INFO`.
pub fn call_plain(ctx: super::CtxPtr, name: &CStr, args: &[&[u8]]) -> Result<CallReply, TxuError> {
    call_plain_flags(ctx, name, c"vE", args)
}

/// Calls a fixed command with string arguments and the given flags (`fmt` starts with `v`).
pub fn call_plain_flags(
    ctx: super::CtxPtr,
    name: &CStr,
    fmt: &CStr,
    args: &[&[u8]],
) -> Result<CallReply, TxuError> {
    let owned = OwnedStr::create_all(args).ok_or(TxuError::OutOfMemory)?;
    call_argv(ctx, name, fmt, &super::strings::borrow_all(&owned))
}

/// Calls a fixed command (`fmt` starts with `v`) and turns an error reply into `Err`.
pub fn call_ok(
    ctx: super::CtxPtr,
    name: &CStr,
    fmt: &CStr,
    args: &[&[u8]],
) -> Result<(), TxuError> {
    match call_plain_flags(ctx, name, fmt, args)?.error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Propagates the current command to replicas and the AOF exactly as received.
pub fn replicate_verbatim(ctx: super::CtxPtr) {
    if super::api!(RedisModule_ReplicateVerbatim).is_some() {
        redis_module::Context::new(ctx).replicate_verbatim();
    }
}

/// Propagates `name args...` to replicas and the AOF (after the current command's effects are
/// known, within the same MULTI/EXEC as its other writes).
pub fn replicate(ctx: super::CtxPtr, name: &CStr, args: &[&[u8]]) -> bool {
    let Some(owned) = OwnedStr::create_all(args) else {
        return false;
    };
    let strs = super::strings::borrow_all(&owned);
    let Some(f) = super::api!(RedisModule_Replicate) else {
        return false;
    };
    // SAFETY: `v` takes a `RedisModuleString**` and a count; the strings outlive the call.
    unsafe {
        f(ctx, name.as_ptr(), c"v".as_ptr(), ptrs(&strs), strs.len())
            == raw::REDISMODULE_OK as c_int
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: Option<OneByOne>) -> Option<Vec<u8>> {
        f.map(|f| f.0.iter().copied().take_while(|&b| b != 0).collect())
    }

    #[test]
    fn short_calls_pass_their_arguments_one_by_one_with_the_same_flags() {
        assert_eq!(
            text(OneByOne::new(RUN_FLAGS, 2)).as_deref(),
            Some(&b"ss!EMCS0"[..])
        );
        assert_eq!(
            text(OneByOne::new(c"vE", 4)).as_deref(),
            Some(&b"ssssE"[..])
        );
        assert_eq!(text(OneByOne::new(c"v", 1)).as_deref(), Some(&b"s"[..]));
        // No arguments, too many, or a format that is not a vector: as given.
        assert!(OneByOne::new(RUN_FLAGS, 0).is_none());
        assert!(OneByOne::new(RUN_FLAGS, ONE_BY_ONE + 1).is_none());
        assert!(OneByOne::new(c"sE", 1).is_none());
    }
}
