//! Command filters: one that sees every command the server receives but this module's own
//! calls, and one that sees those too.

use super::strings::{OwnedStr, Str};
use super::CtxPtr;
use redis_module::raw;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

static FILTER: OnceLock<fn(&FilterCtx)> = OnceLock::new();
static FILTER_ALL: OnceLock<fn(&FilterCtx)> = OnceLock::new();

/// Registers `f` as a command filter that does not see this module's own `RedisModule_Call`s.
/// `f` runs for every command, so it should return at once when it has nothing to do.
pub fn register(ctx: CtxPtr, f: fn(&FilterCtx)) -> Result<(), String> {
    let _ = FILTER.set(f);
    register_raw(ctx, filter, raw::REDISMODULE_CMDFILTER_NOSELF as c_int)
}

/// Registers `f` as a command filter that sees every command, this module's own calls and what
/// runs inside them included (a server skips a `NOSELF` filter for as long as the module is in
/// a `RedisModule_Call`: a script txu runs would pass it). Same care as [`register`].
pub fn register_all(ctx: CtxPtr, f: fn(&FilterCtx)) -> Result<(), String> {
    let _ = FILTER_ALL.set(f);
    register_raw(ctx, filter_all, 0)
}

type RawFilter = unsafe extern "C" fn(*mut raw::RedisModuleCommandFilterCtx);

fn register_raw(ctx: CtxPtr, callback: RawFilter, flags: c_int) -> Result<(), String> {
    let reg =
        super::api!(RedisModule_RegisterCommandFilter).ok_or("RegisterCommandFilter missing")?;
    // SAFETY: `ctx` is the context of the module's load or of one of its commands (the server
    // keeps the filter on the module's list); `callback` is a static function.
    let p = unsafe { reg(ctx, Some(callback), flags) };
    if p.is_null() {
        Err("failed to register the command filter".into())
    } else {
        Ok(())
    }
}

unsafe extern "C" fn filter(p: *mut raw::RedisModuleCommandFilterCtx) {
    dispatch(&FILTER, p);
}

unsafe extern "C" fn filter_all(p: *mut raw::RedisModuleCommandFilterCtx) {
    dispatch(&FILTER_ALL, p);
}

fn dispatch(slot: &OnceLock<fn(&FilterCtx)>, p: *mut raw::RedisModuleCommandFilterCtx) {
    let Some(f) = slot.get() else {
        return;
    };
    if p.is_null() {
        return;
    }
    let fctx = FilterCtx(p);
    let _ = catch_unwind(AssertUnwindSafe(|| f(&fctx)));
}

/// The command a filter is looking at; only lent to the filter function during the callback.
pub struct FilterCtx(*mut raw::RedisModuleCommandFilterCtx);

impl FilterCtx {
    /// The id of the client that sent the command (servers that can tell; else `None`).
    pub fn client_id(&self) -> Option<u64> {
        // SAFETY: valid filter context during the callback.
        unsafe { raw::RedisModule_CommandFilterGetClientId.map(|f| f(self.0)) }
    }

    /// Argument `i` (0 is the command name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        let i = c_int::try_from(i).ok()?;
        let get = super::api!(RedisModule_CommandFilterArgGet)?;
        // SAFETY: valid filter context; the index is checked against the count first. The
        // argument lives while the filter runs, which the borrow of `self` bounds.
        unsafe {
            let count = raw::RedisModule_CommandFilterArgsCount.map_or(0, |f| f(self.0));
            if i >= count {
                return None;
            }
            let p = get(self.0, i);
            (!p.is_null()).then(|| Str::from_ptr(p).bytes())
        }
    }

    /// Replaces argument `i` with `bytes`.
    pub fn replace(&self, i: usize, bytes: &[u8]) -> bool {
        let Ok(i) = c_int::try_from(i) else {
            return false;
        };
        let Some(s) = OwnedStr::create(bytes) else {
            return false;
        };
        let Some(f) = super::api!(RedisModule_CommandFilterArgReplace) else {
            return false;
        };
        let p = s.into_raw();
        // SAFETY: ArgReplace takes ownership of the string on success (and frees the argument
        // it replaces); an index out of range fails.
        let ok = unsafe { f(self.0, i, p) } == raw::REDISMODULE_OK as c_int;
        if !ok {
            // SAFETY: not taken by the server: the reference is still ours.
            drop(unsafe { OwnedStr::from_owned_ptr(p) });
        }
        ok
    }

    /// Inserts `bytes` as argument 0, shifting the command to the right.
    pub fn insert_front(&self, bytes: &[u8]) -> bool {
        let Some(s) = OwnedStr::create(bytes) else {
            return false;
        };
        let Some(f) = super::api!(RedisModule_CommandFilterArgInsert) else {
            return false;
        };
        let p = s.into_raw();
        // SAFETY: ArgInsert takes ownership of the string on success.
        let ok = unsafe { f(self.0, 0, p) } == raw::REDISMODULE_OK as c_int;
        if !ok {
            // SAFETY: not taken by the server: the reference is still ours.
            drop(unsafe { OwnedStr::from_owned_ptr(p) });
        }
        ok
    }
}
