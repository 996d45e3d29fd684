//! Everything that persists: txu's module data types and their RDB, AOF, digest and memory
//! callbacks. A value is always written through the internal command `TXU._LOAD`, run by txu
//! itself with replication on, so primaries, replicas and the AOF all build it the same way;
//! `aof_rewrite` emits the same command.

pub mod keyname;
pub mod tasks;
pub mod undolog;

use crate::server::{self, CtxPtr, StrPtr};
use redis_module::raw;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// A value txu keeps under a key of its own data type.
pub trait Persisted: Sized + 'static {
    /// The 9-character type name `TYPE` shows.
    const NAME: &'static CStr;
    /// Encoding version written to RDB; `rdb_load` refuses any other.
    const ENCVER: c_int;
    /// The first argument of `TXU._LOAD` for this type.
    const KIND: &'static CStr;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Option<Self>;
    fn mem_usage(&self) -> usize;
    /// Called once the value is owned by the server (at `addr`), from RDB or `TXU._LOAD`.
    fn on_attach(&self, _addr: usize) {}
    /// Called just before the server frees the value (possibly from a background thread).
    fn on_detach(&self, _addr: usize) {}
}

/// The registered type, set once at load.
pub struct TypeSlot(AtomicPtr<raw::RedisModuleType>);

impl TypeSlot {
    pub const fn new() -> Self {
        TypeSlot(AtomicPtr::new(ptr::null_mut()))
    }

    pub fn get(&self) -> *mut raw::RedisModuleType {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for TypeSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `T` as a module data type (load time only).
pub fn create_type<T: Persisted>(ctx: CtxPtr, slot: &TypeSlot) -> Result<(), String> {
    let mut methods = raw::RedisModuleTypeMethods {
        // Version 1: rdb_load, rdb_save, aof_rewrite, mem_usage, digest, free. The later
        // fields are left empty on purpose:
        version: 1,
        rdb_load: Some(rdb_load::<T>),
        rdb_save: Some(rdb_save::<T>),
        aof_rewrite: Some(aof_rewrite::<T>),
        mem_usage: Some(mem_usage::<T>),
        digest: Some(digest::<T>),
        free: Some(free::<T>),
        // No module-global (aux) state: everything lives in keys.
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        // Values are small; freeing them inline is cheap, which also keeps `free` on the main
        // thread in the common case.
        free_effort: None,
        unlink: None,
        // COPY of a txu key is refused by the server: a copied undo log would undo twice.
        copy: None,
        // No defragmentation support; values are plain Rust heap data.
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    };
    // SAFETY: load-time registration; the server copies the method table.
    let t = unsafe {
        let create = raw::RedisModule_CreateDataType.ok_or("CreateDataType missing")?;
        create(ctx, T::NAME.as_ptr(), T::ENCVER, &mut methods)
    };
    if t.is_null() {
        return Err(format!(
            "failed to create data type {}",
            T::NAME.to_string_lossy()
        ));
    }
    slot.0.store(t, Ordering::Release);
    Ok(())
}

fn log_io_warning(msg: &str) {
    // No context in type callbacks: a NULL context logs as the module-less server log.
    server::log_warning(ptr::null_mut(), msg);
}

unsafe extern "C" fn rdb_load<T: Persisted>(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
) -> *mut c_void {
    catch_unwind(AssertUnwindSafe(|| {
        if encver != T::ENCVER {
            log_io_warning(&format!(
                "txu: refusing {} encoding version {encver} (this build knows {})",
                T::NAME.to_string_lossy(),
                T::ENCVER
            ));
            return ptr::null_mut();
        }
        let (Some(load), Some(free_buf)) =
            (raw::RedisModule_LoadStringBuffer, raw::RedisModule_Free)
        else {
            return ptr::null_mut();
        };
        let mut len = 0usize;
        let p = load(rdb, &mut len);
        if p.is_null() || raw::RedisModule_IsIOError.is_some_and(|f| f(rdb) != 0) {
            return ptr::null_mut();
        }
        let value = T::decode(std::slice::from_raw_parts(p.cast::<u8>(), len));
        free_buf(p.cast());
        match value {
            Some(v) => {
                let b = Box::into_raw(Box::new(v));
                (*b).on_attach(b as usize);
                b.cast()
            }
            None => {
                log_io_warning(&format!(
                    "txu: corrupt {} value in RDB",
                    T::NAME.to_string_lossy()
                ));
                ptr::null_mut()
            }
        }
    }))
    .unwrap_or(ptr::null_mut())
}

unsafe extern "C" fn rdb_save<T: Persisted>(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(v) = value.cast::<T>().as_ref() else {
            return;
        };
        let bytes = v.encode();
        if let Some(save) = raw::RedisModule_SaveStringBuffer {
            save(rdb, bytes.as_ptr().cast::<c_char>(), bytes.len());
        }
    }));
}

unsafe extern "C" fn aof_rewrite<T: Persisted>(
    aof: *mut raw::RedisModuleIO,
    key: StrPtr,
    value: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(v) = value.cast::<T>().as_ref() else {
            return;
        };
        let bytes = v.encode();
        if let Some(emit) = raw::RedisModule_EmitAOF {
            // The key's expiry is written by the server after this command.
            emit(
                aof,
                LOAD_COMMAND.as_ptr(),
                c"csbc".as_ptr(),
                T::KIND.as_ptr(),
                key,
                bytes.as_ptr().cast::<c_char>(),
                bytes.len(),
                c"0".as_ptr(),
            );
        }
    }));
}

unsafe extern "C" fn mem_usage<T: Persisted>(value: *const c_void) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        value
            .cast::<T>()
            .as_ref()
            .map_or(0, |v| std::mem::size_of::<T>() + v.mem_usage())
    }))
    .unwrap_or(0)
}

unsafe extern "C" fn digest<T: Persisted>(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(v) = value.cast::<T>().as_ref() else {
            return;
        };
        let bytes = v.encode();
        if let (Some(add), Some(end)) = (
            raw::RedisModule_DigestAddStringBuffer,
            raw::RedisModule_DigestEndSequence,
        ) {
            add(md, bytes.as_ptr().cast::<c_char>(), bytes.len());
            end(md);
        }
    }));
}

unsafe extern "C" fn free<T: Persisted>(value: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if value.is_null() {
            return;
        }
        let b = Box::from_raw(value.cast::<T>());
        b.on_detach(value as usize);
        drop(b);
    }));
}

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>`: the only way txu values are written.
pub const LOAD_COMMAND: &CStr = c"txu._load";

/// Set while txu itself calls one of its internal commands; clients cannot call them.
static INTERNAL: AtomicBool = AtomicBool::new(false);

/// Whether an internal command (`TXU._LOAD`, `TXU._TASK`, `TXU._CONFLICT`) may run now: called
/// by txu itself, by the primary over the replication link, or while loading the AOF.
pub fn internal_allowed(ctx: CtxPtr) -> bool {
    let flags = server::context_flags(ctx);
    INTERNAL.load(Ordering::Relaxed)
        || flags & (raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING) != 0
}

/// Writes `value` under `key` (replacing whatever is there) with an optional absolute
/// expiry, replicated and written to the AOF as `TXU._LOAD`.
pub fn save<T: Persisted>(
    ctx: CtxPtr,
    key: &[u8],
    value: &T,
    expire_at_ms: Option<i64>,
) -> Result<(), String> {
    let payload = value.encode();
    let exp = expire_at_ms.unwrap_or(0).to_string();
    call_internal(
        ctx,
        LOAD_COMMAND,
        &[T::KIND.to_bytes(), key, &payload, exp.as_bytes()],
    )
}

/// Runs one of txu's internal commands with replication on, so replicas and the AOF get it
/// verbatim.
pub fn call_internal(ctx: CtxPtr, cmd: &CStr, args: &[&[u8]]) -> Result<(), String> {
    INTERNAL.store(true, Ordering::Relaxed);
    let r = server::call_ok(ctx, cmd, c"v!E", args);
    INTERNAL.store(false, Ordering::Relaxed);
    r
}

/// Applies a `TXU._LOAD` on this server: decodes `payload` and stores it under `key`.
pub fn apply_load<T: Persisted>(
    ctx: CtxPtr,
    slot: &TypeSlot,
    key: StrPtr,
    payload: &[u8],
    expire_at_ms: i64,
) -> Result<(), String> {
    let value = T::decode(payload).ok_or("ERR corrupt txu payload")?;
    // SAFETY: key opened for writing and closed here; on success the server owns the box.
    unsafe {
        let open = raw::RedisModule_OpenKey.ok_or("ERR OpenKey missing")?;
        let set = raw::RedisModule_ModuleTypeSetValue.ok_or("ERR ModuleTypeSetValue missing")?;
        let k = open(
            ctx,
            key,
            (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
        );
        if k.is_null() {
            return Err("ERR cannot open key".into());
        }
        let b = Box::into_raw(Box::new(value));
        let rc = set(k, slot.get(), b.cast());
        if rc != raw::REDISMODULE_OK as c_int {
            drop(Box::from_raw(b));
            if let Some(close) = raw::RedisModule_CloseKey {
                close(k);
            }
            return Err("ERR cannot store txu value".into());
        }
        (*b).on_attach(b as usize);
        if expire_at_ms > 0 {
            if let Some(f) = raw::RedisModule_SetAbsExpire {
                f(k, expire_at_ms);
            }
        }
        if let Some(close) = raw::RedisModule_CloseKey {
            close(k);
        }
    }
    Ok(())
}

/// The value of type `T` under `key`, if the key holds one.
///
/// # Safety
/// The reference is valid only until the key is next written or deleted; use it within the
/// current command and do not hold it across server calls that could change the key.
pub unsafe fn lookup<'a, T: Persisted>(
    ctx: CtxPtr,
    slot: &TypeSlot,
    key: StrPtr,
) -> Option<&'a mut T> {
    let open = raw::RedisModule_OpenKey?;
    let k = open(ctx, key, raw::REDISMODULE_READ as c_int);
    if k.is_null() {
        return None;
    }
    let t = raw::RedisModule_ModuleTypeGetType.map_or(ptr::null_mut(), |f| f(k));
    let v = if !t.is_null() && t == slot.get() {
        raw::RedisModule_ModuleTypeGetValue.map_or(ptr::null_mut(), |f| f(k))
    } else {
        ptr::null_mut()
    };
    if let Some(close) = raw::RedisModule_CloseKey {
        close(k);
    }
    v.cast::<T>().as_mut()
}
