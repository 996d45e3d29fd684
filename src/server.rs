//! The one place that wraps raw Redis module FFI the `redis-module` crate lacks or gets wrong
//! for us (see `shared/PLATFORM.md`): `RedisModule_Call` with an argv vector and call flags,
//! `ReplyWithCallReply`, `GetCommandKeysWithFlags`, ACL checks, client ids and client events.
//!
//! Every function here is safe to call from a command handler: a missing API pointer (older
//! server) is reported as an error, never as a panic, and nothing indexes into client data.

use redis_module::raw;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::{self, NonNull};

pub type CtxPtr = *mut raw::RedisModuleCtx;
pub type StrPtr = *mut raw::RedisModuleString;

/// A reference we own on a `RedisModuleString`: retained from a command's argv or created
/// here. Freed (reference dropped) on drop, without a context, which Redis allows for strings
/// that are not under automatic memory management.
pub struct OwnedStr(NonNull<raw::RedisModuleString>);

// SAFETY: Redis runs module commands, events and timers on its main thread only; the global
// registries that hold these strings are only touched from there. `Send` is needed solely so
// the strings can sit in a `static` behind a mutex.
unsafe impl Send for OwnedStr {}

impl OwnedStr {
    /// Takes an extra reference on a string Redis handed us (argv of a command).
    ///
    /// # Safety
    /// `ptr` must be a valid `RedisModuleString` for the duration of this call.
    pub unsafe fn retain(ptr: StrPtr) -> Option<Self> {
        let nn = NonNull::new(ptr)?;
        let f = raw::RedisModule_RetainString?;
        f(ptr::null_mut(), ptr);
        Some(OwnedStr(nn))
    }

    /// Creates a new string holding a copy of `bytes`.
    pub fn create(bytes: &[u8]) -> Option<Self> {
        // SAFETY: CreateString copies `len` bytes from `ptr`; a NULL context is allowed.
        unsafe {
            let f = raw::RedisModule_CreateString?;
            NonNull::new(f(ptr::null_mut(), bytes.as_ptr().cast(), bytes.len())).map(OwnedStr)
        }
    }

    pub fn as_ptr(&self) -> StrPtr {
        self.0.as_ptr()
    }

    pub fn as_bytes(&self) -> &[u8] {
        str_bytes(self.as_ptr())
    }
}

impl Drop for OwnedStr {
    fn drop(&mut self) {
        // SAFETY: we hold one reference on this string; a NULL context is allowed here.
        unsafe {
            if let Some(f) = raw::RedisModule_FreeString {
                f(ptr::null_mut(), self.0.as_ptr());
            }
        }
    }
}

/// The bytes of a `RedisModuleString` (empty for a NULL pointer).
pub fn str_bytes<'a>(s: StrPtr) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    // SAFETY: StringPtrLen returns a pointer into the string object and its length; the
    // returned slice lives as long as the caller keeps the string alive.
    unsafe {
        let Some(f) = raw::RedisModule_StringPtrLen else {
            return &[];
        };
        let mut len = 0usize;
        let p = f(s, &mut len);
        if p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

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
        // SAFETY: CallReplyStringPtr returns a pointer into the reply, valid while it lives.
        unsafe {
            let Some(f) = raw::RedisModule_CallReplyStringPtr else {
                return &[];
            };
            let mut len = 0usize;
            let p = f(self.ptr, &mut len);
            if p.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        }
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
            if p.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(p.cast::<u8>(), len)
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

fn wrap_reply(p: *mut raw::RedisModuleCallReply) -> Result<CallReply, String> {
    match NonNull::new(p) {
        Some(nn) => Ok(CallReply(nn)),
        None => {
            let e = std::io::Error::last_os_error();
            Err(format!("ERR call refused by the server ({e})"))
        }
    }
}

/// Flags passed to `RedisModule_Call` for queued commands: replicate (`!`), errors as
/// replies (`E`), check OOM for deny-oom commands (`M`), check the caller's ACL on the
/// command and its keys (`C`), script mode (`S`: refuses writes when min-replicas or disk
/// persistence fail, and on read-only replicas), reply in the client's protocol (`0`).
pub const RUN_FLAGS: &CStr = c"v!EMCS0";

/// Calls `name` with `args` (argv without the command name) and `fmt` (must start with `v`).
pub fn call_argv(
    ctx: CtxPtr,
    name: &CStr,
    fmt: &CStr,
    args: &[StrPtr],
) -> Result<CallReply, String> {
    // SAFETY: `v` takes a `RedisModuleString**` and a `size_t` count; every pointer in `args`
    // is a live string we hold a reference on. Call does not keep the array.
    unsafe {
        let f = raw::RedisModule_Call.ok_or("ERR RedisModule_Call missing")?;
        let p = f(ctx, name.as_ptr(), fmt.as_ptr(), args.as_ptr(), args.len());
        wrap_reply(p)
    }
}

/// `DUMP key` (no replication, no ACL): the serialized value, or `None` if the key is absent.
pub fn dump(ctx: CtxPtr, key: StrPtr) -> Result<Option<Vec<u8>>, String> {
    // SAFETY: format `s` takes one `RedisModuleString*`.
    let r = unsafe {
        let f = raw::RedisModule_Call.ok_or("ERR RedisModule_Call missing")?;
        wrap_reply(f(ctx, c"DUMP".as_ptr(), c"sE".as_ptr(), key))?
    };
    match r.as_ref().kind() {
        ReplyKind::String => Ok(Some(r.as_ref().bytes().to_vec())),
        ReplyKind::Null => Ok(None),
        _ => Err(r
            .error_text()
            .unwrap_or_else(|| "ERR unexpected DUMP reply".into())),
    }
}

/// Calls a fixed command with string arguments (no replication, RESP2). For introspection
/// such as `COMMAND INFO`.
pub fn call_plain(ctx: CtxPtr, name: &CStr, args: &[&[u8]]) -> Result<CallReply, String> {
    call_plain_flags(ctx, name, c"vE", args)
}

/// Calls a fixed command with string arguments and the given flags (`fmt` starts with `v`).
pub fn call_plain_flags(
    ctx: CtxPtr,
    name: &CStr,
    fmt: &CStr,
    args: &[&[u8]],
) -> Result<CallReply, String> {
    let owned: Vec<OwnedStr> = args
        .iter()
        .map(|a| OwnedStr::create(a).ok_or_else(|| "ERR out of memory".to_string()))
        .collect::<Result<_, _>>()?;
    let ptrs: Vec<StrPtr> = owned.iter().map(OwnedStr::as_ptr).collect();
    call_argv(ctx, name, fmt, &ptrs)
}

/// Calls a fixed command (`fmt` starts with `v`) and turns an error reply into `Err`.
pub fn call_ok(ctx: CtxPtr, name: &CStr, fmt: &CStr, args: &[&[u8]]) -> Result<(), String> {
    match call_plain_flags(ctx, name, fmt, args)?.error_text() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Propagates the current command to replicas and the AOF exactly as received.
pub fn replicate_verbatim(ctx: CtxPtr) {
    // SAFETY: plain call within a command.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplicateVerbatim {
            f(ctx);
        }
    }
}

/// Selects database `db` for the current client; returns the previously selected one.
pub fn select_db(ctx: CtxPtr, db: i32) -> Option<i32> {
    // SAFETY: plain calls within a command.
    unsafe {
        let prev = raw::RedisModule_GetSelectedDb?(ctx);
        (raw::RedisModule_SelectDb?(ctx, db) == raw::REDISMODULE_OK as c_int).then_some(prev)
    }
}

/// Existence and absolute expiry of a key, read without touching its LRU/LFU.
/// `None`: key absent. `Some(None)`: no expiry. `Some(Some(ms))`: expires at `ms`.
pub fn key_expiry(ctx: CtxPtr, key: StrPtr) -> Option<Option<i64>> {
    // SAFETY: OpenKey/KeyType/GetAbsExpire/CloseKey on a key we open and close here.
    unsafe {
        let open = raw::RedisModule_OpenKey?;
        let k = open(
            ctx,
            key,
            (raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH) as c_int,
        );
        if k.is_null() {
            return None;
        }
        let t = raw::RedisModule_KeyType.map_or(0, |f| f(k));
        let exp = raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(k));
        if let Some(close) = raw::RedisModule_CloseKey {
            close(k.cast());
        }
        if t == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
            None
        } else if exp < 0 {
            Some(None)
        } else {
            Some(Some(exp))
        }
    }
}

/// Positions (in `argv`, where `argv[0]` is the command name) of the keys of a command.
pub enum KeysLookup {
    Keys(Vec<(usize, u32)>),
    Unknown,
    WrongArity,
}

pub fn command_keys(ctx: CtxPtr, argv: &[StrPtr]) -> KeysLookup {
    let Ok(argc) = c_int::try_from(argv.len()) else {
        return KeysLookup::WrongArity;
    };
    // SAFETY: GetCommandKeysWithFlags reads `argc` strings from `argv` and returns two arrays
    // of `num_keys` ints allocated with the module allocator, which we free here.
    unsafe {
        let Some(f) = raw::RedisModule_GetCommandKeysWithFlags else {
            return KeysLookup::Keys(Vec::new());
        };
        let mut num: c_int = 0;
        let mut flags: *mut c_int = ptr::null_mut();
        // errno is only meaningful when NULL comes back; clear it first.
        *errno_location() = 0;
        let pos = f(
            ctx,
            argv.as_ptr() as *mut StrPtr,
            argc,
            &mut num,
            &mut flags,
        );
        if pos.is_null() {
            let e = *errno_location();
            return match e {
                ENOENT => KeysLookup::Unknown,
                EINVAL => KeysLookup::WrongArity,
                _ => KeysLookup::Keys(Vec::new()),
            };
        }
        let n = usize::try_from(num).unwrap_or(0);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let p = *pos.add(i);
            let fl = if flags.is_null() { 0 } else { *flags.add(i) };
            if let Ok(p) = usize::try_from(p) {
                if p < argv.len() {
                    out.push((p, fl as u32));
                }
            }
        }
        if let Some(free) = raw::RedisModule_Free {
            free(pos.cast());
            if !flags.is_null() {
                free(flags.cast());
            }
        }
        KeysLookup::Keys(out)
    }
}

const ENOENT: c_int = 2;
const EINVAL: c_int = 22;

extern "C" {
    fn __errno_location() -> *mut c_int;
}

unsafe fn errno_location() -> *mut c_int {
    __errno_location()
}

/// The name of the user the current client is authenticated as.
pub fn current_user(ctx: CtxPtr) -> Option<OwnedStr> {
    // SAFETY: GetCurrentUserName returns a new string we own (or NULL).
    unsafe {
        let f = raw::RedisModule_GetCurrentUserName?;
        NonNull::new(f(ctx)).map(OwnedStr)
    }
}

/// Whether the current user may run `argv` (command and keys). `None` if the server lacks
/// the API or there is no current user (then the exec-time `C` flag still enforces it).
pub fn acl_allows(ctx: CtxPtr, argv: &[StrPtr]) -> Option<bool> {
    let user = current_user(ctx)?;
    acl_allows_user(&user, argv)
}

/// Whether the ACL user named `user` may run `argv`. `Some(false)` if the user is gone.
pub fn acl_allows_user(user: &OwnedStr, argv: &[StrPtr]) -> Option<bool> {
    let argc = c_int::try_from(argv.len()).ok()?;
    // SAFETY: the module user is a view of the ACL user, freed before returning; no Redis
    // call in between can delete the user.
    unsafe {
        let get = raw::RedisModule_GetModuleUserFromUserName?;
        let check = raw::RedisModule_ACLCheckCommandPermissions?;
        let free = raw::RedisModule_FreeModuleUser?;
        let u = get(user.as_ptr());
        if u.is_null() {
            return Some(false);
        }
        let ok = check(u, argv.as_ptr() as *mut StrPtr, argc) == raw::REDISMODULE_OK as c_int;
        free(u);
        Some(ok)
    }
}

/// `ACL DRYRUN <user> <argv...>`: the server's own words for why the user may not run it.
pub fn acl_dryrun_reason(ctx: CtxPtr, argv: &[StrPtr]) -> Option<String> {
    let user = current_user(ctx)?;
    acl_dryrun_reason_for(ctx, &user, argv)
}

/// As `acl_dryrun_reason`, for a named user.
pub fn acl_dryrun_reason_for(ctx: CtxPtr, user: &OwnedStr, argv: &[StrPtr]) -> Option<String> {
    let dry = OwnedStr::create(b"DRYRUN")?;
    let mut args: Vec<StrPtr> = Vec::with_capacity(argv.len() + 2);
    args.push(dry.as_ptr());
    args.push(user.as_ptr());
    args.extend_from_slice(argv);
    let r = call_argv(ctx, c"ACL", c"vE", &args).ok()?;
    let text = String::from_utf8_lossy(r.as_ref().bytes()).into_owned();
    (text != "OK").then_some(text)
}

pub fn client_id(ctx: CtxPtr) -> u64 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetClientId.map_or(0, |f| f(ctx)) }
}

pub fn context_flags(ctx: CtxPtr) -> u32 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetContextFlags.map_or(0, |f| f(ctx)) as u32 }
}

pub fn in_multi(ctx: CtxPtr) -> bool {
    context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_MULTI != 0
}

/// Wall-clock milliseconds (cached by the server per command).
pub fn now_ms() -> i64 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) }
}

// ---- replies ------------------------------------------------------------------------------

/// Replies with an error. `msg` must start with an error code (`ERR`, `NOPERM`, ...). CR, LF
/// and NUL are replaced so the reply can never break the protocol or the C string.
pub fn reply_error(ctx: CtxPtr, msg: &str) -> c_int {
    let clean: String = msg
        .chars()
        .map(|c| {
            if c == '\r' || c == '\n' || c == '\0' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let c = CString::new(clean).unwrap_or_else(|_| CString::from(c"ERR internal error"));
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { raw::RedisModule_ReplyWithError.map_or(0, |f| f(ctx, c.as_ptr())) }
}

pub fn reply_simple(ctx: CtxPtr, msg: &CStr) -> c_int {
    // SAFETY: msg is a valid C string.
    unsafe { raw::RedisModule_ReplyWithSimpleString.map_or(0, |f| f(ctx, msg.as_ptr())) }
}

pub fn reply_bulk(ctx: CtxPtr, bytes: &[u8]) -> c_int {
    // SAFETY: copies `len` bytes.
    unsafe {
        raw::RedisModule_ReplyWithStringBuffer
            .map_or(0, |f| f(ctx, bytes.as_ptr().cast(), bytes.len()))
    }
}

pub fn reply_array(ctx: CtxPtr, len: usize) -> c_int {
    let n = std::os::raw::c_long::try_from(len).unwrap_or(0);
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithArray.map_or(0, |f| f(ctx, n)) }
}

pub fn reply_null(ctx: CtxPtr) -> c_int {
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithNull.map_or(0, |f| f(ctx)) }
}

/// Forwards a call reply verbatim (same RESP type and bytes as the command would have sent).
/// Returns false if the server refused (protocol mismatch); the caller must then send
/// something else in its place so the client never waits for a missing reply.
pub fn reply_with_call_reply(ctx: CtxPtr, reply: &CallReply) -> bool {
    // SAFETY: reply is a live top-level reply.
    unsafe {
        raw::RedisModule_ReplyWithCallReply
            .is_some_and(|f| f(ctx, reply.0.as_ptr()) == raw::REDISMODULE_OK as c_int)
    }
}

// ---- registration -------------------------------------------------------------------------

pub type CmdFn = unsafe extern "C" fn(CtxPtr, *mut StrPtr, c_int) -> c_int;

pub fn create_command(ctx: CtxPtr, name: &CStr, f: CmdFn, flags: &CStr) -> Result<(), String> {
    // SAFETY: registration at load time with static C strings.
    let rc = unsafe {
        let create = raw::RedisModule_CreateCommand.ok_or("RedisModule_CreateCommand missing")?;
        create(ctx, name.as_ptr(), Some(f), flags.as_ptr(), 0, 0, 0)
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!(
            "failed to create command {}",
            name.to_string_lossy()
        ))
    }
}

pub type EventFn = unsafe extern "C" fn(CtxPtr, raw::RedisModuleEvent, u64, *mut std::ffi::c_void);

/// Subscribes to a server event (`REDISMODULE_EVENT_*`).
pub fn subscribe_event(ctx: CtxPtr, id: u64, f: EventFn) -> Result<(), String> {
    let ev = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: registration at load time.
    let rc = unsafe {
        let sub =
            raw::RedisModule_SubscribeToServerEvent.ok_or("SubscribeToServerEvent missing")?;
        sub(ctx, ev, Some(f))
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!("failed to subscribe to server event {id}"))
    }
}

/// The client id carried by a client-change event.
///
/// # Safety
/// `data` must be the `RedisModuleClientInfo` pointer Redis passed to the event callback.
pub unsafe fn client_event_id(data: *mut std::ffi::c_void) -> Option<u64> {
    let info = data.cast::<raw::RedisModuleClientInfo>();
    if info.is_null() {
        return None;
    }
    Some((*info).id)
}

pub fn log_notice(ctx: CtxPtr, msg: &str) {
    let Ok(c) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: format "%s" with one C string argument.
    unsafe {
        if let Some(f) = raw::RedisModule_Log {
            f(ctx, c"notice".as_ptr(), c"%s".as_ptr(), c.as_ptr());
        }
    }
}

pub fn log_warning(ctx: CtxPtr, msg: &str) {
    let Ok(c) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: format "%s" with one C string argument.
    unsafe {
        if let Some(f) = raw::RedisModule_Log {
            f(ctx, c"warning".as_ptr(), c"%s".as_ptr(), c.as_ptr());
        }
    }
}

// ---- what this server offers ----------------------------------------------------------------

/// The server we are loaded into and the optional APIs it has, detected at load time by the
/// presence of the raw function pointers.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `redis` or `valkey`.
    pub name: String,
    pub version: String,
    /// `RedisModule_CommandFilterGetClientId` (Redis ≥ 7.2, Valkey): capture mode.
    pub filter_client_id: bool,
    /// `RedisModule_AddACLCategory` (Redis ≥ 7.4, Valkey 8): the `txu` ACL category.
    pub acl_category: bool,
    /// `RedisModule_SetCommandACLCategories` (Redis ≥ 7.2, Valkey).
    pub command_acl_categories: bool,
    /// `RedisModule_SetCommandInfo` (Redis ≥ 7.0): `COMMAND DOCS` summaries.
    pub command_info: bool,
}

pub fn server_facts(ctx: CtxPtr) -> ServerFacts {
    let field = |name: &CStr| -> Option<String> {
        // SAFETY: GetServerInfo returns data we free below; the field pointer is copied out
        // before that.
        unsafe {
            let get = raw::RedisModule_GetServerInfo?;
            let getf = raw::RedisModule_ServerInfoGetFieldC?;
            let free = raw::RedisModule_FreeServerInfo?;
            let data = get(ctx, c"server".as_ptr());
            if data.is_null() {
                return None;
            }
            let p = getf(data, name.as_ptr());
            let v = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
            free(ctx, data);
            v
        }
    };
    let (name, version) = match field(c"valkey_version") {
        Some(v) => ("valkey".to_string(), v),
        None => (
            "redis".to_string(),
            field(c"redis_version").unwrap_or_else(|| "unknown".into()),
        ),
    };
    // SAFETY: reading whether optional function pointers were filled in at init.
    unsafe {
        ServerFacts {
            name,
            version,
            filter_client_id: { raw::RedisModule_CommandFilterGetClientId }.is_some() && {
                raw::RedisModule_RegisterCommandFilter
            }
            .is_some(),
            acl_category: { raw::RedisModule_AddACLCategory }.is_some(),
            command_acl_categories: { raw::RedisModule_SetCommandACLCategories }.is_some() && {
                raw::RedisModule_GetCommand
            }
            .is_some(),
            command_info: { raw::RedisModule_SetCommandInfo }.is_some() && {
                raw::RedisModule_GetCommand
            }
            .is_some(),
        }
    }
}

/// Adds a module ACL category (load time only).
pub fn add_acl_category(ctx: CtxPtr, name: &CStr) -> Result<(), String> {
    // SAFETY: load-time registration with a static C string.
    let rc = unsafe {
        let f = raw::RedisModule_AddACLCategory.ok_or("AddACLCategory missing")?;
        f(ctx, name.as_ptr())
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!(
            "failed to add ACL category {}",
            name.to_string_lossy()
        ))
    }
}

/// Sets ACL categories (space separated) of one of our commands.
pub fn set_command_acl_categories(
    ctx: CtxPtr,
    cmd: &CStr,
    categories: &CStr,
) -> Result<(), String> {
    // SAFETY: load-time registration with C strings; GetCommand returns our own command.
    let rc = unsafe {
        let get = raw::RedisModule_GetCommand.ok_or("GetCommand missing")?;
        let set =
            raw::RedisModule_SetCommandACLCategories.ok_or("SetCommandACLCategories missing")?;
        let c = get(ctx, cmd.as_ptr());
        if c.is_null() {
            return Err(format!("no command {}", cmd.to_string_lossy()));
        }
        set(c, categories.as_ptr())
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!(
            "failed to set ACL categories of {}",
            cmd.to_string_lossy()
        ))
    }
}

/// Sets the `COMMAND DOCS` summary, complexity and first version of one of our commands.
/// Arity is left as registered (0 here means "keep"); no key specs: see `commands::COMMANDS`.
pub fn set_command_docs(
    ctx: CtxPtr,
    cmd: &CStr,
    summary: &CStr,
    complexity: &CStr,
    since: &CStr,
) -> Result<(), String> {
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: summary.as_ptr(),
        complexity: complexity.as_ptr(),
        since: since.as_ptr(),
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: 0,
        key_specs: ptr::null_mut(),
        args: ptr::null_mut(),
    };
    // SAFETY: the server copies what it keeps from `info` during the call.
    let rc = unsafe {
        let get = raw::RedisModule_GetCommand.ok_or("GetCommand missing")?;
        let set = raw::RedisModule_SetCommandInfo.ok_or("SetCommandInfo missing")?;
        let c = get(ctx, cmd.as_ptr());
        if c.is_null() {
            return Err(format!("no command {}", cmd.to_string_lossy()));
        }
        set(c, &info)
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!("failed to set docs of {}", cmd.to_string_lossy()))
    }
}

// ---- command filter ---------------------------------------------------------------------------

pub type FilterFn = unsafe extern "C" fn(*mut raw::RedisModuleCommandFilterCtx);

/// Registers a command filter that does not see this module's own `RedisModule_Call`s.
pub fn register_filter(ctx: CtxPtr, f: FilterFn) -> Result<(), String> {
    // SAFETY: load-time registration.
    let p = unsafe {
        let reg = raw::RedisModule_RegisterCommandFilter.ok_or("RegisterCommandFilter missing")?;
        reg(ctx, Some(f), raw::REDISMODULE_CMDFILTER_NOSELF as c_int)
    };
    if p.is_null() {
        Err("failed to register the command filter".into())
    } else {
        Ok(())
    }
}

/// The command a filter is looking at.
pub struct FilterCtx(*mut raw::RedisModuleCommandFilterCtx);

impl FilterCtx {
    /// # Safety
    /// `p` must be the context Redis passed to the filter callback, used only during it.
    pub unsafe fn new(p: *mut raw::RedisModuleCommandFilterCtx) -> Option<Self> {
        (!p.is_null()).then_some(FilterCtx(p))
    }

    /// The id of the client that sent the command (servers that can tell; else `None`).
    pub fn client_id(&self) -> Option<u64> {
        // SAFETY: valid filter context during the callback.
        unsafe { raw::RedisModule_CommandFilterGetClientId.map(|f| f(self.0)) }
    }

    /// Argument `i` (0 is the command name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        let i = c_int::try_from(i).ok()?;
        // SAFETY: valid filter context; ArgGet bounds-checks and returns NULL past the end.
        unsafe {
            let count = raw::RedisModule_CommandFilterArgsCount.map_or(0, |f| f(self.0));
            if i >= count {
                return None;
            }
            let p = raw::RedisModule_CommandFilterArgGet?(self.0, i);
            (!p.is_null()).then(|| str_bytes(p))
        }
    }

    /// Inserts `bytes` as argument 0, shifting the command to the right.
    pub fn insert_front(&self, bytes: &[u8]) -> bool {
        let Some(s) = OwnedStr::create(bytes) else {
            return false;
        };
        // SAFETY: ArgInsert takes ownership of the string on success.
        unsafe {
            let Some(f) = raw::RedisModule_CommandFilterArgInsert else {
                return false;
            };
            if f(self.0, 0, s.as_ptr()) == raw::REDISMODULE_OK as c_int {
                std::mem::forget(s);
                true
            } else {
                false
            }
        }
    }
}

// ---- keyspace notifications -------------------------------------------------------------------

pub type NotifyFn = unsafe extern "C" fn(CtxPtr, c_int, *const c_char, StrPtr) -> c_int;

/// Subscribes to keyspace events of `types` (`REDISMODULE_NOTIFY_*`).
pub fn subscribe_keyspace(ctx: CtxPtr, types: c_int, f: NotifyFn) -> Result<(), String> {
    // SAFETY: load-time registration.
    let rc = unsafe {
        let sub = raw::RedisModule_SubscribeToKeyspaceEvents
            .ok_or("SubscribeToKeyspaceEvents missing")?;
        sub(ctx, types, Some(f))
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err("failed to subscribe to keyspace events".into())
    }
}

/// The database selected in `ctx`.
pub fn selected_db(ctx: CtxPtr) -> i32 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |f| f(ctx)) }
}

// ---- timers and server state ----------------------------------------------------------------

pub type TimerFn = unsafe extern "C" fn(CtxPtr, *mut std::ffi::c_void);

/// Arms a one-shot timer; the callback re-arms it for a periodic tick.
pub fn create_timer(ctx: CtxPtr, after_ms: i64, f: TimerFn) -> bool {
    // SAFETY: plain call; no data pointer is passed.
    unsafe {
        raw::RedisModule_CreateTimer.is_some_and(|c| {
            c(ctx, after_ms.max(1), Some(f), ptr::null_mut());
            true
        })
    }
}

/// Used memory / maxmemory (0 when no maxmemory is set).
pub fn used_memory_ratio() -> f32 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetUsedMemoryRatio.map_or(0.0, |f| f()) }
}

/// True while clients are paused for writes or a failover is in progress: propagating writes
/// then trips an assertion in Redis.
pub fn avoid_replica_traffic() -> bool {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_AvoidReplicaTraffic.is_some_and(|f| f() != 0) }
}

pub fn is_primary(ctx: CtxPtr) -> bool {
    context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
}

pub fn is_loading(ctx: CtxPtr) -> bool {
    context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_LOADING != 0
}

pub fn reply_integer(ctx: CtxPtr, v: i64) -> c_int {
    // SAFETY: plain reply call.
    unsafe { raw::RedisModule_ReplyWithLongLong.map_or(0, |f| f(ctx, v)) }
}

/// Propagates `name args...` to replicas and the AOF (after the current command's effects are
/// known, within the same MULTI/EXEC as its other writes).
pub fn replicate(ctx: CtxPtr, name: &CStr, args: &[&[u8]]) -> bool {
    let owned: Option<Vec<OwnedStr>> = args.iter().map(|a| OwnedStr::create(a)).collect();
    let Some(owned) = owned else {
        return false;
    };
    let ptrs: Vec<StrPtr> = owned.iter().map(OwnedStr::as_ptr).collect();
    // SAFETY: `v` takes a `RedisModuleString**` and a count; the strings outlive the call.
    unsafe {
        raw::RedisModule_Replicate.is_some_and(|f| {
            f(ctx, name.as_ptr(), c"v".as_ptr(), ptrs.as_ptr(), ptrs.len())
                == raw::REDISMODULE_OK as c_int
        })
    }
}
