//! ACL checks: who the current user is, and whether a user may run a command on its keys.

use super::call::call_argv;
use super::strings::{ptrs, OwnedStr, Str};
use super::CtxPtr;
use redis_module::raw;
use std::ffi::c_int;

/// The name of the user the current client is authenticated as. Never call it from a timer:
/// Redis 7.0 crashes there (there is no client).
pub fn current_user(ctx: CtxPtr) -> Option<OwnedStr> {
    let f = super::api!(RedisModule_GetCurrentUserName)?;
    // SAFETY: GetCurrentUserName returns a new string we own (or NULL).
    unsafe { OwnedStr::from_owned_ptr(f(ctx)) }
}

/// Whether the current user may run `argv` (command and keys). `None` if the server lacks
/// the API or there is no current user (then the exec-time `C` flag still enforces it).
pub fn allows(ctx: CtxPtr, argv: &[Str<'_>]) -> Option<bool> {
    let user = current_user(ctx)?;
    allows_user(&user, argv)
}

/// The current client's ACL user, looked up once for the checks of several commands (the
/// commands of one `TXU.RUN`), and released when dropped.
pub struct UserHandle(*mut raw::RedisModuleUser);

impl UserHandle {
    /// The current client's user; `None` if the server lacks the API or there is no current
    /// user (then the exec-time `C` flag still enforces the ACL).
    pub fn current(ctx: CtxPtr) -> Option<UserHandle> {
        UserHandle::named(&current_user(ctx)?)
    }

    /// The ACL user named `name`; `None` if there is none (or the server lacks the API).
    pub fn named(name: &OwnedStr) -> Option<UserHandle> {
        let get = super::api!(RedisModule_GetModuleUserFromUserName)?;
        super::api!(RedisModule_ACLCheckCommandPermissions)?;
        super::api!(RedisModule_FreeModuleUser)?;
        // SAFETY: the name is a live string; the returned module user is released in `drop`.
        let u = unsafe { get(name.as_str().as_ptr()) };
        (!u.is_null()).then_some(UserHandle(u))
    }

    /// Whether this user may run `argv` (command and keys).
    pub fn allows(&self, argv: &[Str<'_>]) -> Option<bool> {
        let argc = c_int::try_from(argv.len()).ok()?;
        let check = super::api!(RedisModule_ACLCheckCommandPermissions)?;
        // SAFETY: the handle is alive (it lives within one command: nothing runs in between
        // that could delete the ACL user); `argv` holds `argc` live strings.
        Some(unsafe { check(self.0, ptrs(argv), argc) } == raw::REDISMODULE_OK as c_int)
    }
}

// SAFETY: as for `OwnedStr`: module users are only touched from the server's main thread (the
// commands, filters and timers that use them); `Send` only lets one sit in a global registry
// for the duration of one command (a transaction's running script).
unsafe impl Send for UserHandle {}

impl Drop for UserHandle {
    fn drop(&mut self) {
        if let Some(free) = super::api!(RedisModule_FreeModuleUser) {
            // SAFETY: made by GetModuleUserFromUserName in `current`, freed once.
            unsafe { free(self.0) };
        }
    }
}

/// Whether the ACL user named `user` may run `argv`. `Some(false)` if the user is gone.
pub fn allows_user(user: &OwnedStr, argv: &[Str<'_>]) -> Option<bool> {
    let argc = c_int::try_from(argv.len()).ok()?;
    let get = super::api!(RedisModule_GetModuleUserFromUserName)?;
    let check = super::api!(RedisModule_ACLCheckCommandPermissions)?;
    let free = super::api!(RedisModule_FreeModuleUser)?;
    // SAFETY: the module user is a view of the ACL user, freed before returning; no Redis
    // call in between can delete the user. `argv` holds `argc` live strings.
    unsafe {
        let u = get(user.as_str().as_ptr());
        if u.is_null() {
            return Some(false);
        }
        let ok = check(u, ptrs(argv), argc) == raw::REDISMODULE_OK as c_int;
        free(u);
        Some(ok)
    }
}

/// `ACL DRYRUN <user> <argv...>` for the current user: the server's own words for why it may
/// not run `argv`.
pub fn dryrun_reason(ctx: CtxPtr, argv: &[Str<'_>]) -> Option<String> {
    let user = current_user(ctx)?;
    dryrun_reason_for(ctx, &user, argv)
}

/// As `dryrun_reason`, for a named user.
pub fn dryrun_reason_for(ctx: CtxPtr, user: &OwnedStr, argv: &[Str<'_>]) -> Option<String> {
    let dry = OwnedStr::create(b"DRYRUN")?;
    let mut args: Vec<Str<'_>> = Vec::with_capacity(argv.len() + 2);
    args.push(dry.as_str());
    args.push(user.as_str());
    args.extend_from_slice(argv);
    let r = call_argv(ctx, c"ACL", c"vE", &args).ok()?;
    let text = String::from_utf8_lossy(r.as_ref().bytes()).into_owned();
    (text != "OK").then_some(text)
}

/// What a caller wants to do with keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Read,
    Write,
}

/// Whether the current user may `access` every key of `keys` (its key patterns, `%R~`/`%W~`
/// included). False when the server cannot tell: txu never shows or changes data on a guess.
pub fn may_access_keys(ctx: CtxPtr, keys: &[&[u8]], access: KeyAccess) -> bool {
    let Some(user) = current_user(ctx) else {
        return false;
    };
    let (Some(get), Some(check), Some(free)) = (
        super::api!(RedisModule_GetModuleUserFromUserName),
        super::api!(RedisModule_ACLCheckKeyPermissions),
        super::api!(RedisModule_FreeModuleUser),
    ) else {
        return false;
    };
    let flags = match access {
        KeyAccess::Read => raw::REDISMODULE_CMD_KEY_ACCESS,
        KeyAccess::Write => raw::REDISMODULE_CMD_KEY_UPDATE,
    } as c_int;
    let Some(names) = OwnedStr::create_all(keys) else {
        return false;
    };
    // SAFETY: the module user is a view of the ACL user, freed before returning; no Redis call
    // in between can delete the user. Every key string is alive (owned here).
    unsafe {
        let u = get(user.as_str().as_ptr());
        if u.is_null() {
            return false;
        }
        let ok = names
            .iter()
            .all(|k| check(u, k.as_str().as_ptr(), flags) == raw::REDISMODULE_OK as c_int);
        free(u);
        ok
    }
}
