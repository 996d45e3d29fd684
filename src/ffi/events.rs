//! Server events, keyspace notifications and timers, delivered to plain Rust functions. Each
//! raw callback here runs its function under `catch_unwind`.

use super::strings::Str;
use super::{CtxPtr, StrPtr};
use redis_module::{raw, Context};
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static ON_DISCONNECT: OnceLock<fn(u64)> = OnceLock::new();
static ON_FLUSH: OnceLock<fn(i32)> = OnceLock::new();
static ON_MODULE_CHANGE: OnceLock<fn()> = OnceLock::new();
/// A keyspace notification: `(ctx, event, key)`.
pub type KeyspaceFn = fn(CtxPtr, &[u8], &[u8]);

static ON_KEYSPACE: OnceLock<KeyspaceFn> = OnceLock::new();
/// Asked first on every notification, before anything is read: `false` returns at once.
static KEYSPACE_WANTED: OnceLock<fn() -> bool> = OnceLock::new();
/// A context of this module that outlives load time (detached, thread-safe), to subscribe
/// to keyspace notifications when they are first needed and to create timers from the event
/// loop ([`run_soon`]). Used on the main thread only.
static MODULE_CTX: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(std::ptr::null_mut());
/// Subscribed to keyspace notifications now.
static SUBSCRIBED: AtomicBool = AtomicBool::new(false);
/// Stay subscribed once subscribed (cluster mode: slot moves bring logs in without a
/// transaction).
static KEEP: AtomicBool = AtomicBool::new(false);
static ON_ROLE_PRIMARY: OnceLock<fn()> = OnceLock::new();
/// What [`run_soon`] runs.
static SOON: OnceLock<fn(CtxPtr)> = OnceLock::new();
static ON_LOADED: OnceLock<fn()> = OnceLock::new();

type EventFn = unsafe extern "C" fn(CtxPtr, raw::RedisModuleEvent, u64, *mut c_void);

fn subscribe(ctx: CtxPtr, id: u64, f: EventFn) -> Result<(), String> {
    let ev = raw::RedisModuleEvent { id, dataver: 1 };
    let sub =
        super::api!(RedisModule_SubscribeToServerEvent).ok_or("SubscribeToServerEvent missing")?;
    // SAFETY: registration at load time.
    let rc = unsafe { sub(ctx, ev, Some(f)) };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!("failed to subscribe to server event {id}"))
    }
}

/// `f(client id)` when a client disconnects.
pub fn on_client_disconnected(ctx: CtxPtr, f: fn(u64)) -> Result<(), String> {
    let _ = ON_DISCONNECT.set(f);
    subscribe(ctx, raw::REDISMODULE_EVENT_CLIENT_CHANGE, client_change)
}

/// `f(db)` when the server starts emptying database `db` (-1: all of them): FLUSHDB,
/// FLUSHALL, a full resync, DEBUG RELOAD.
pub fn on_flush_start(ctx: CtxPtr, f: fn(i32)) -> Result<(), String> {
    let _ = ON_FLUSH.set(f);
    subscribe(ctx, raw::REDISMODULE_EVENT_FLUSHDB, flush)
}

/// `f()` when a module is loaded or unloaded (the command table may have changed).
pub fn on_module_change(ctx: CtxPtr, f: fn()) -> Result<(), String> {
    let _ = ON_MODULE_CHANGE.set(f);
    subscribe(ctx, raw::REDISMODULE_EVENT_MODULE_CHANGE, module_change)
}

/// `f(ctx, event, key)` for every keyspace notification (`event` as `del`, `restore`, ...)
/// once subscribed, which is not at once: the server creates a module context for every
/// notification of every write, a cost worth paying only while `f` has something to do.
/// [`ensure_keyspace`] subscribes (an atomic load when already subscribed); `always`
/// subscribes now and for good. `wanted()` is asked first on every notification; `false`
/// returns before anything else is read.
pub fn on_keyspace(
    ctx: CtxPtr,
    wanted: fn() -> bool,
    f: KeyspaceFn,
    always: bool,
) -> Result<(), String> {
    let _ = ON_KEYSPACE.set(f);
    let _ = KEYSPACE_WANTED.set(wanted);
    super::api!(RedisModule_SubscribeToKeyspaceEvents)
        .ok_or("SubscribeToKeyspaceEvents missing")?;
    let detach = super::api!(RedisModule_GetDetachedThreadSafeContext)
        .ok_or("GetDetachedThreadSafeContext missing")?;
    // SAFETY: load time, with the module's context; the detached context lives until the
    // server exits (never freed), and only its module pointer is used (see `subscribe_now`).
    let detached = unsafe { detach(ctx) };
    if detached.is_null() {
        return Err("no detached context for keyspace events".into());
    }
    MODULE_CTX.store(detached, Ordering::Relaxed);
    if always {
        KEEP.store(true, Ordering::Relaxed);
        if !subscribe_now() {
            return Err("failed to subscribe to keyspace events".into());
        }
    }
    Ok(())
}

/// Subscribes to keyspace notifications unless subscribed. Main thread only, outside a
/// notification (true of commands, timers and server events).
pub fn ensure_keyspace() {
    if !SUBSCRIBED.load(Ordering::Relaxed) {
        subscribe_now();
    }
}

fn subscribe_now() -> bool {
    let ctx = MODULE_CTX.load(Ordering::Relaxed);
    let Some(sub) = super::api!(RedisModule_SubscribeToKeyspaceEvents) else {
        return false;
    };
    if ctx.is_null() {
        return false;
    }
    // SAFETY: main thread; `ctx` is this module's detached context (its module pointer is
    // what the subscription records), alive for the life of the process.
    let rc = unsafe { sub(ctx, raw::REDISMODULE_NOTIFY_ALL, Some(keyspace)) };
    let ok = rc == raw::REDISMODULE_OK as c_int;
    if ok {
        SUBSCRIBED.store(true, Ordering::Relaxed);
    }
    ok
}

/// Unsubscribes from keyspace notifications where the server can (Redis 8), unless told to
/// stay subscribed. Main thread only, outside a notification (the timer).
pub fn release_keyspace() {
    if KEEP.load(Ordering::Relaxed) || !SUBSCRIBED.load(Ordering::Relaxed) {
        return;
    }
    let ctx = MODULE_CTX.load(Ordering::Relaxed);
    let Some(unsub) = super::api!(RedisModule_UnsubscribeFromKeyspaceEvents) else {
        return;
    };
    if ctx.is_null() {
        return;
    }
    // SAFETY: main thread, from the timer (no notification is being delivered); the same
    // context, mask and callback as the subscription.
    let rc = unsafe { unsub(ctx, raw::REDISMODULE_NOTIFY_ALL, Some(keyspace)) };
    if rc == raw::REDISMODULE_OK as c_int {
        SUBSCRIBED.store(false, Ordering::Relaxed);
    }
}

/// `f()` when this server becomes a primary.
pub fn on_role_primary(ctx: CtxPtr, f: fn()) -> Result<(), String> {
    let _ = ON_ROLE_PRIMARY.set(f);
    subscribe(
        ctx,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        role_changed,
    )
}

/// `f()` when the server has finished loading data (startup, `DEBUG RELOAD`, a full sync).
pub fn on_loaded(ctx: CtxPtr, f: fn()) -> Result<(), String> {
    let _ = ON_LOADED.set(f);
    subscribe(ctx, raw::REDISMODULE_EVENT_LOADING, loading)
}

unsafe extern "C" fn role_changed(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    call_on(
        subevent,
        raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER,
        &ON_ROLE_PRIMARY,
    );
}

unsafe extern "C" fn loading(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    call_on(
        subevent,
        raw::REDISMODULE_SUBEVENT_LOADING_ENDED,
        &ON_LOADED,
    );
}

/// Runs the function in `slot` (if set) when `subevent` is `wanted`; a panic stays here.
fn call_on(subevent: u64, wanted: u64, slot: &OnceLock<fn()>) {
    let _ = catch_unwind(|| {
        if subevent == wanted {
            if let Some(f) = slot.get() {
                f();
            }
        }
    });
}

unsafe extern "C" fn client_change(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if subevent != raw::REDISMODULE_SUBEVENT_CLIENT_CHANGE_DISCONNECTED {
            return;
        }
        // SAFETY: Redis passes a RedisModuleClientInfo for client-change events.
        let info = unsafe { data.cast::<raw::RedisModuleClientInfo>().as_ref() };
        if let (Some(info), Some(f)) = (info, ON_DISCONNECT.get()) {
            f(info.id);
        }
    }));
}

unsafe extern "C" fn flush(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_START {
            return;
        }
        // SAFETY: Redis passes a RedisModuleFlushInfo for flush events.
        let info = unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() };
        if let (Some(info), Some(f)) = (info, ON_FLUSH.get()) {
            f(info.dbnum);
        }
    }));
}

unsafe extern "C" fn module_change(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    let _ = catch_unwind(|| {
        if let Some(f) = ON_MODULE_CHANGE.get() {
            f();
        }
    });
}

unsafe extern "C" fn keyspace(
    ctx: CtxPtr,
    _type: c_int,
    event: *const c_char,
    key: StrPtr,
) -> c_int {
    if KEYSPACE_WANTED.get().is_some_and(|wanted| !wanted()) {
        return 0;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the key string and the event name are alive for the duration of the
        // notification; the event name is a NUL-terminated C string.
        let (key, event) = unsafe {
            let event = if event.is_null() {
                &[][..]
            } else {
                std::ffi::CStr::from_ptr(event).to_bytes()
            };
            (Str::from_ptr(key), event)
        };
        if let Some(f) = ON_KEYSPACE.get() {
            f(ctx, event, key.bytes());
        }
    }));
    0
}

/// Runs `f` (always the same function) once with a timer context at the next turn of the event
/// loop, after the server has served the clients whose requests are waiting. A timer created
/// from a timer callback fires 1 ms later at the earliest (the server's timer handler rounds
/// up); this one is created from the event loop instead (`EventLoopAddOneShot`), where a 0 ms
/// timer fires at the next turn. `false` if the server cannot do that (the caller then uses
/// a 1 ms timer).
pub fn run_soon(f: fn(CtxPtr)) -> bool {
    let _ = SOON.set(f);
    let Some(add) = super::api!(RedisModule_EventLoopAddOneShot) else {
        return false;
    };
    if MODULE_CTX.load(Ordering::Relaxed).is_null() {
        return false;
    }
    // SAFETY: main thread; the callback takes no data (null).
    unsafe { add(Some(soon), std::ptr::null_mut()) == raw::REDISMODULE_OK as c_int }
}

unsafe extern "C" fn soon(_data: *mut c_void) {
    let _ = catch_unwind(|| {
        let ctx = MODULE_CTX.load(Ordering::Relaxed);
        if let (false, Some(f)) = (ctx.is_null(), SOON.get()) {
            // From the event loop, not from the timer handler: a 0 ms timer fires at the next
            // turn of the loop, with a timer context (replication as from any timer).
            create_timer(ctx, 0, *f);
        }
    });
}

/// Runs `f(ctx)` once, `after_ms` from now, with a timer context (the crate's timer API).
pub fn create_timer(ctx: CtxPtr, after_ms: i64, f: fn(CtxPtr)) -> bool {
    if super::api!(RedisModule_CreateTimer).is_none() {
        return false;
    }
    let ms = u64::try_from(after_ms.max(0)).unwrap_or(0);
    Context::new(ctx).create_timer(
        Duration::from_millis(ms),
        |c: &Context, f: fn(CtxPtr)| {
            let _ = catch_unwind(AssertUnwindSafe(|| f(c.ctx)));
        },
        f,
    );
    true
}

/// Fires the module keyspace event `event` (class `d`) for `key` in the selected database:
/// `__keyevent@<db>__:<event>` with the key as message, and `__keyspace@<db>__:<key>` with the
/// event, for clients subscribed with `notify-keyspace-events` including `d`.
pub fn notify_module_event(ctx: CtxPtr, event: &std::ffi::CStr, key: &[u8]) {
    let Some(k) = super::strings::OwnedStr::create(key) else {
        return;
    };
    if let Some(notify) = super::api!(RedisModule_NotifyKeyspaceEvent) {
        // SAFETY: a live context, a NUL-terminated event name and a string we own; the server
        // copies what it publishes.
        unsafe {
            notify(
                ctx,
                raw::REDISMODULE_NOTIFY_MODULE as c_int,
                event.as_ptr(),
                k.as_str().as_ptr(),
            )
        };
    }
}
