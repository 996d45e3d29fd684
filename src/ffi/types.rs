//! Module data types: registration and the RDB, AOF, digest, memory and free callbacks of a
//! [`ModuleValue`], and storing or reading such a value under a key.

use super::strings::Str;
use super::{CtxPtr, StrPtr};
use crate::error::TxuError;
use redis_module::raw;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A value txu keeps under a key of its own data type.
pub trait ModuleValue: Sized + 'static {
    /// The 9-character type name `TYPE` shows.
    const NAME: &'static CStr;
    /// Encoding version written to RDB; `rdb_load` refuses any other.
    const ENCVER: c_int;
    /// How `aof_rewrite` writes a value back: `<AOF_COMMAND> <KIND> <key> <payload> 0`.
    const AOF_COMMAND: &'static CStr;
    const KIND: &'static CStr;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Decodes a value `rdb_load` read (RDB loading, a replica's full sync, `RESTORE`,
    /// `MIGRATE`); `from` says where it is going.
    fn load(bytes: &[u8], _from: &LoadedFrom<'_>) -> Option<Self> {
        Self::decode(bytes)
    }
    fn mem_usage(&self) -> usize;
    /// Called once the value is owned by the server (at `addr`), from RDB or `TXU._LOAD`.
    fn on_attach(&self, _addr: usize) {}
    /// Called just before the server frees the value (possibly from a background thread).
    fn on_detach(&self, _addr: usize) {}
}

/// Where `rdb_load` is putting a value.
pub struct LoadedFrom<'a> {
    /// The key's name, where the server tells.
    pub key: Option<&'a [u8]>,
    /// The key's database, where the server tells.
    pub db: Option<i32>,
    /// The server is loading its dataset (RDB at startup, `DEBUG RELOAD`, a replica's full
    /// sync): false for `RESTORE` and `MIGRATE`, which a client sent.
    pub loading: bool,
}

/// Reads where the value `rdb` is loading goes.
///
/// # Safety
/// `rdb` must be the IO handle of the `rdb_load` call in progress.
unsafe fn loaded_from<'a>(rdb: *mut raw::RedisModuleIO) -> LoadedFrom<'a> {
    let key = super::api!(RedisModule_GetKeyNameFromIO)
        .map(|f| f(rdb))
        .filter(|k| !k.is_null())
        // SAFETY: the key name lives at least as long as the load in progress.
        .map(|k| super::strings::Str::from_ptr(k.cast_mut()).bytes());
    let db = super::api!(RedisModule_GetDbIdFromIO).map(|f| f(rdb));
    let ctx = super::api!(RedisModule_GetContextFromIO).map_or(ptr::null_mut(), |f| f(rdb));
    let loading = !ctx.is_null() && super::context::is_loading(ctx);
    LoadedFrom { key, db, loading }
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

/// Asks the server to report short or damaged reads of txu values to `rdb_load` (which then
/// refuses the value) instead of aborting: `RESTORE` of a damaged payload replies an error,
/// a damaged RDB refuses to load with a log line, and the server stays up.
pub fn handle_io_errors(ctx: CtxPtr) {
    if super::api!(RedisModule_SetModuleOptions).is_some() {
        redis_module::Context::new(ctx)
            .set_module_options(redis_module::raw::ModuleOptions::HANDLE_IO_ERRORS);
    }
}

/// Registers `T` as a module data type (load time only).
pub fn create_type<T: ModuleValue>(ctx: CtxPtr, slot: &TypeSlot) -> Result<(), String> {
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
    let create = super::api!(RedisModule_CreateDataType).ok_or("CreateDataType missing")?;
    // SAFETY: load-time registration; the server copies the method table.
    let t = unsafe { create(ctx, T::NAME.as_ptr(), T::ENCVER, &mut methods) };
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
    super::context::log_warning(ptr::null_mut(), msg);
}

unsafe extern "C" fn rdb_load<T: ModuleValue>(
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
        let value = T::load(
            std::slice::from_raw_parts(p.cast::<u8>(), len),
            &loaded_from(rdb),
        );
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

unsafe extern "C" fn rdb_save<T: ModuleValue>(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
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

unsafe extern "C" fn aof_rewrite<T: ModuleValue>(
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
                T::AOF_COMMAND.as_ptr(),
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

unsafe extern "C" fn mem_usage<T: ModuleValue>(value: *const c_void) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        value
            .cast::<T>()
            .as_ref()
            .map_or(0, |v| std::mem::size_of::<T>() + v.mem_usage())
    }))
    .unwrap_or(0)
}

unsafe extern "C" fn digest<T: ModuleValue>(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
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

unsafe extern "C" fn free<T: ModuleValue>(value: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if value.is_null() {
            return;
        }
        let b = Box::from_raw(value.cast::<T>());
        b.on_detach(value as usize);
        drop(b);
    }));
}

/// Stores `value` under `key` (replacing whatever is there; on this server only, the caller
/// replicates) with an optional absolute expiry (`expire_at_ms` > 0).
pub fn set_value<T: ModuleValue>(
    ctx: CtxPtr,
    slot: &TypeSlot,
    key: Str<'_>,
    value: T,
    expire_at_ms: i64,
) -> Result<(), TxuError> {
    let open =
        super::api!(RedisModule_OpenKey).ok_or(TxuError::MissingApi("RedisModule_OpenKey"))?;
    let set = super::api!(RedisModule_ModuleTypeSetValue)
        .ok_or(TxuError::MissingApi("RedisModule_ModuleTypeSetValue"))?;
    // SAFETY: the key is opened for writing and closed here; on success the server owns the
    // box (and frees it through `free::<T>`).
    unsafe {
        let k = open(
            ctx,
            key.as_ptr(),
            (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
        );
        if k.is_null() {
            return Err(TxuError::CannotStore("txu value"));
        }
        let b = Box::into_raw(Box::new(value));
        let rc = set(k, slot.get(), b.cast());
        if rc != raw::REDISMODULE_OK as c_int {
            drop(Box::from_raw(b));
            if let Some(close) = raw::RedisModule_CloseKey {
                close(k);
            }
            return Err(TxuError::CannotStore("txu value"));
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

/// Runs `f` on the value of type `T` under `key`, if the key holds one. `f` must not write or
/// delete that key through the server (it only gets the value, not the context, for that).
pub fn with_value<T: ModuleValue, R>(
    ctx: CtxPtr,
    slot: &TypeSlot,
    key: Str<'_>,
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    let open = super::api!(RedisModule_OpenKey)?;
    // SAFETY: the key is opened for reading and closed before returning; the value pointer
    // belongs to the key and stays valid while nothing writes the key, i.e. during `f`.
    unsafe {
        let k = open(ctx, key.as_ptr(), raw::REDISMODULE_READ as c_int);
        if k.is_null() {
            return None;
        }
        let t = raw::RedisModule_ModuleTypeGetType.map_or(ptr::null_mut(), |g| g(k));
        let v = if !t.is_null() && t == slot.get() {
            raw::RedisModule_ModuleTypeGetValue.map_or(ptr::null_mut(), |g| g(k))
        } else {
            ptr::null_mut()
        };
        let out = v.cast::<T>().as_mut().map(f);
        if let Some(close) = raw::RedisModule_CloseKey {
            close(k);
        }
        out
    }
}
