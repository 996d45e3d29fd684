//! Module data types: registration and the RDB, AOF, digest, memory and free callbacks of a
//! [`ModuleValue`], and storing or reading such a value under a key.

use super::strings::Str;
use super::{CtxPtr, StrPtr};
use crate::codec::DecodeError;
use crate::error::{quote, TxuError};
use redis_module::raw;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
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
    /// The inverse of `encode`; refuses (never panics on) any input `encode` did not write:
    /// another version, truncated, trailing or damaged bytes, values that break an invariant.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
    /// Whether this value may live under `key` in database `db`: txu finds its values where
    /// it put them, so a copy elsewhere (`RESTORE` under another name, say) must not take the
    /// place of the real one in txu's bookkeeping.
    fn belongs_at(&self, _key: &[u8], _db: i32) -> bool {
        true
    }
    /// What a freshly decoded value becomes once placed where it belongs: `authoritative` is
    /// true when it comes from the dataset the server loads (RDB, a full sync, `DEBUG RELOAD`)
    /// or from txu's own `TXU._LOAD`, false when a client sent it (`RESTORE`). Called once,
    /// before the server owns the value.
    fn settle(self, _authoritative: bool) -> Self {
        self
    }
    /// The payload `aof_rewrite` writes for this value found under `key` in database `db`
    /// (default: `encode`).
    fn encode_at(&self, _key: &[u8], _db: Option<i32>) -> Vec<u8> {
        self.encode()
    }
    /// What `DEBUG DIGEST` hashes (default: `encode`): the value's data, so that an inert copy
    /// of a value digests as the value does.
    fn digest_bytes(&self) -> Vec<u8> {
        self.encode()
    }
    fn mem_usage(&self) -> usize;
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

/// Logs about the value `rdb` is loading, as txu (`<txu>` in the server log): a warning while
/// the server loads its dataset; otherwise (`RESTORE`, which replies the error to its client)
/// at `verbose`, as the server logs a damaged `RESTORE` payload itself, so that clients cannot
/// flood the log.
fn log_io(rdb: *mut raw::RedisModuleIO, loading: bool, msg: &str) {
    // One line: decoders' messages may hold line breaks (and a damaged key name anything).
    let line: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let Ok(text) = CString::new(line.as_str()) else {
        return;
    };
    let level = if loading { c"warning" } else { c"verbose" };
    match super::api!(RedisModule_LogIOError) {
        // SAFETY: `rdb` is the IO context the server handed to `rdb_load`, alive for the
        // call; format "%s" with one C string argument.
        Some(log) => unsafe { log(rdb, level.as_ptr(), c"%s".as_ptr(), text.as_ptr()) },
        // No context in type callbacks: a NULL context logs as the module-less server log.
        None if loading => super::context::log_warning(ptr::null_mut(), &line),
        None => {}
    }
}

/// Where the value `rdb` is loading will live: (key, database), when the server says.
fn io_location(rdb: *mut raw::RedisModuleIO) -> Option<(Vec<u8>, i32)> {
    let (name, db) = (
        super::api!(RedisModule_GetKeyNameFromIO)?,
        super::api!(RedisModule_GetDbIdFromIO)?,
    );
    // SAFETY: `rdb` is alive for the `rdb_load` call; the key name belongs to the IO context
    // and is copied here before the call returns.
    unsafe {
        let key = name(rdb);
        if key.is_null() {
            return None;
        }
        let key = Str::from_ptr(key.cast_mut()).bytes().to_vec();
        Some((key, db(rdb)))
    }
}

/// Whether the server is loading its dataset (RDB at start, `DEBUG RELOAD`, a replica's full
/// sync, the AOF) rather than running a command such as `RESTORE`.
fn io_loading(rdb: *mut raw::RedisModuleIO) -> bool {
    let Some(get) = super::api!(RedisModule_GetContextFromIO) else {
        return false;
    };
    // SAFETY: `rdb` is alive for the `rdb_load` call; the context it returns is owned by the
    // IO context and only used for this call.
    let ctx = unsafe { get(rdb) };
    !ctx.is_null() && super::context::is_loading(ctx)
}

/// Whether this server is a replica (the value comes from its primary's stream).
fn io_replica(rdb: *mut raw::RedisModuleIO) -> bool {
    let Some(get) = super::api!(RedisModule_GetContextFromIO) else {
        return false;
    };
    // SAFETY: as in `io_loading`.
    let ctx = unsafe { get(rdb) };
    !ctx.is_null() && !super::context::is_primary(ctx)
}

/// The string `rdb` is at, copied; `None` on a short read or a damaged string (the server
/// reports those to us instead of aborting: see `handle_io_errors`).
fn load_string(rdb: *mut raw::RedisModuleIO) -> Option<Vec<u8>> {
    let (load, free_buf) = (
        super::api!(RedisModule_LoadStringBuffer)?,
        super::api!(RedisModule_Free)?,
    );
    let is_io_error = super::api!(RedisModule_IsIOError);
    let mut len = 0usize;
    // SAFETY: `rdb` is alive for the `rdb_load` call. A non-NULL result is a buffer of `len`
    // bytes that we own: it is copied, then freed with the server's allocator.
    unsafe {
        let p = load(rdb, &mut len);
        let failed = is_io_error.is_some_and(|f| f(rdb) != 0);
        if p.is_null() {
            return None;
        }
        let bytes = super::bytes_at(p, len).to_vec();
        free_buf(p.cast());
        (!failed).then_some(bytes)
    }
}

/// Loads one value (RDB, `DEBUG RELOAD`, full sync, `RESTORE`). Every refusal returns NULL,
/// which the server turns into `ERR Bad data format` for `RESTORE` and into a refusal to load
/// for a file, after the log line written here.
unsafe extern "C" fn rdb_load<T: ModuleValue>(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
) -> *mut c_void {
    catch_unwind(AssertUnwindSafe(|| {
        let at = io_location(rdb);
        let refuse = |why: &str| {
            let what = match &at {
                Some((key, db)) => format!(
                    "{} value of key '{}' (database {db})",
                    T::NAME.to_string_lossy(),
                    quote(key)
                ),
                None => format!("{} value", T::NAME.to_string_lossy()),
            };
            log_io(
                rdb,
                io_loading(rdb),
                &format!("txu: refusing the {what}: {why}"),
            );
            ptr::null_mut()
        };
        if encver != T::ENCVER {
            return refuse(&format!(
                "encoding version {encver} (this build knows {})",
                T::ENCVER
            ));
        }
        let Some(bytes) = load_string(rdb) else {
            return refuse("short read (truncated or damaged data)");
        };
        let value = match T::decode(&bytes) {
            Ok(v) => v,
            Err(e) => return refuse(&e.to_string()),
        };
        let loading = io_loading(rdb);
        let value = match &at {
            Some((key, db)) if !value.belongs_at(key, *db) => {
                if !loading {
                    return refuse("it belongs under another key");
                }
                // A file holding it there (a renamed, moved or swapped key) still loads: the
                // value is kept as inert data that txu ignores.
                log_io(
                    rdb,
                    true,
                    &format!(
                        "txu: the {} value of key '{}' (database {db}) belongs under another \
                         key; kept as inert data, txu ignores it",
                        T::NAME.to_string_lossy(),
                        quote(key)
                    ),
                );
                value.settle(false)
            }
            // On a replica, what arrives is its primary's (a client cannot write there).
            _ => value.settle(loading || io_replica(rdb)),
        };
        Box::into_raw(Box::new(value)).cast()
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
        let db = super::api!(RedisModule_GetDbIdFromIO).map(|f| f(aof));
        let bytes = v.encode_at(Str::from_ptr(key).bytes(), db);
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
        let bytes = v.digest_bytes();
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
