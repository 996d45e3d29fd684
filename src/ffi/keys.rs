//! The keyspace: databases, a key's expiry read through the key API, and the key positions of
//! a command.

use super::strings::{ptrs, Str};
use super::CtxPtr;
use redis_module::raw;
use std::ffi::c_int;
use std::ptr;

/// Key-spec flags that mean "this command may change this key".
pub const KEY_WRITES: u32 = raw::REDISMODULE_CMD_KEY_RW
    | raw::REDISMODULE_CMD_KEY_OW
    | raw::REDISMODULE_CMD_KEY_RM
    | raw::REDISMODULE_CMD_KEY_INSERT
    | raw::REDISMODULE_CMD_KEY_DELETE
    | raw::REDISMODULE_CMD_KEY_UPDATE;

/// Selects database `db` for the current client; returns the previously selected one.
pub fn select_db(ctx: CtxPtr, db: i32) -> Option<i32> {
    let (get, select) = (
        super::api!(RedisModule_GetSelectedDb)?,
        super::api!(RedisModule_SelectDb)?,
    );
    // SAFETY: plain calls within a command or timer context.
    unsafe {
        let prev = get(ctx);
        (select(ctx, db) == raw::REDISMODULE_OK as c_int).then_some(prev)
    }
}

/// The database selected in `ctx`.
pub fn selected_db(ctx: CtxPtr) -> i32 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |f| f(ctx)) }
}

/// Existence and absolute expiry of a key, read without touching its LRU/LFU.
/// `None`: key absent. `Some(None)`: no expiry. `Some(Some(ms))`: expires at `ms`.
pub fn key_expiry(ctx: CtxPtr, key: Str<'_>) -> Option<Option<i64>> {
    let (t, exp) = peek(ctx, key, |k| {
        // SAFETY: `k` is the open key `peek` lends.
        unsafe { raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(k)) }
    })?;
    if t == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
        None
    } else if exp < 0 {
        Some(None)
    } else {
        Some(Some(exp))
    }
}

/// What one lookup of an existing key tells: its type, length (elements of a collection,
/// bytes of a string) and absolute expiry (`None`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFacts {
    pub kind: KeyKind,
    pub len: usize,
    pub expire_at_ms: Option<i64>,
}

/// [`KeyFacts`] of `key`, read without touching its LRU/LFU; `None` when it does not exist
/// (an expired key does not).
pub fn key_facts(ctx: CtxPtr, key: Str<'_>) -> Option<KeyFacts> {
    let (t, (len, exp)) = peek(ctx, key, |k| {
        // SAFETY: `k` is the open key `peek` lends.
        unsafe {
            (
                raw::RedisModule_ValueLength.map_or(0, |f| f(k)),
                raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(k)),
            )
        }
    })?;
    Some(KeyFacts {
        kind: kind_of(t)?,
        len,
        expire_at_ms: (exp >= 0).then_some(exp),
    })
}

/// The kind of a `RedisModule_KeyType`; `None` for an empty key.
fn kind_of(t: c_int) -> Option<KeyKind> {
    Some(match t as isize {
        raw::REDISMODULE_KEYTYPE_EMPTY => return None,
        raw::REDISMODULE_KEYTYPE_STRING => KeyKind::String,
        raw::REDISMODULE_KEYTYPE_LIST => KeyKind::List,
        raw::REDISMODULE_KEYTYPE_HASH => KeyKind::Hash,
        raw::REDISMODULE_KEYTYPE_SET => KeyKind::Set,
        raw::REDISMODULE_KEYTYPE_ZSET => KeyKind::ZSet,
        _ => KeyKind::Other,
    })
}

/// The values of `fields` in the hash `key` (`None`: no such field), as `HMGET` would reply,
/// read through the key API without touching the key's LRU/LFU. `None` when the key is not a
/// hash (or an API is missing): ask the server. Only for servers without field TTLs, whose
/// expired fields the key API and `HMGET` might see differently.
pub fn hash_get(ctx: CtxPtr, key: Str<'_>, fields: &[&[u8]]) -> Option<Vec<Option<Vec<u8>>>> {
    let names = super::strings::OwnedStr::create_all(fields)?;
    let get = super::api!(RedisModule_HashGet)?;
    let (t, values) = peek(ctx, key, |k| {
        let mut out = Vec::with_capacity(names.len());
        for name in &names {
            let mut value: super::StrPtr = ptr::null_mut();
            // SAFETY: `k` is the open key `peek` lends; HashGet reads the field name and
            // stores a new string we own (NULL when the field is absent) in `value`; the
            // argument list ends with NULL as the API requires.
            let ok = unsafe {
                get(
                    k,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    name.as_str().as_ptr(),
                    &mut value as *mut super::StrPtr,
                    ptr::null_mut::<std::ffi::c_void>(),
                )
            };
            if ok != raw::REDISMODULE_OK as c_int {
                return None;
            }
            // SAFETY: `value` is NULL or a string whose reference HashGet gave us.
            let owned = unsafe { super::strings::OwnedStr::from_owned_ptr(value) };
            out.push(owned.map(|v| v.as_bytes().to_vec()));
        }
        Some(out)
    })?;
    (kind_of(t) == Some(KeyKind::Hash))
        .then_some(values)
        .flatten()
}

/// The scores of `members` in the sorted set `key` (`None`: not a member), as `ZMSCORE`
/// would reply, read through the key API without touching the key's LRU/LFU. `None` when the
/// key is not a sorted set (or an API is missing): ask the server.
pub fn zset_scores(ctx: CtxPtr, key: Str<'_>, members: &[&[u8]]) -> Option<Vec<Option<f64>>> {
    let names = super::strings::OwnedStr::create_all(members)?;
    let score_of = super::api!(RedisModule_ZsetScore)?;
    let (t, scores) = peek(ctx, key, |k| {
        names
            .iter()
            .map(|m| {
                let mut score = 0f64;
                // SAFETY: `k` is the open key `peek` lends; ZsetScore reads the member and
                // writes one double we own; it fails for a member that is not there (the
                // key's type is checked below).
                let ok = unsafe { score_of(k, m.as_str().as_ptr(), &mut score) };
                (ok == raw::REDISMODULE_OK as c_int).then_some(score)
            })
            .collect::<Vec<_>>()
    })?;
    (kind_of(t) == Some(KeyKind::ZSet)).then_some(scores)
}

/// `LRANGE key start stop` of a list, read through the key API (`RedisModule_ListGet`)
/// without touching its LRU/LFU, when the range holds at most `max` elements; `None` when the
/// key is not a list, the range is longer, or an API is missing: ask the server.
pub fn list_range(
    ctx: CtxPtr,
    key: Str<'_>,
    start: i64,
    stop: i64,
    max: usize,
) -> Option<Vec<Vec<u8>>> {
    let (get, length) = (
        super::api!(RedisModule_ListGet)?,
        super::api!(RedisModule_ValueLength)?,
    );
    let (t, items) = peek(ctx, key, |k| {
        // SAFETY: `k` is the open key `peek` lends.
        let len = i64::try_from(unsafe { length(k) }).ok()?;
        // LRANGE's rules: negative indexes count from the end; the range is clamped.
        let from = if start < 0 {
            len.saturating_add(start).max(0)
        } else {
            start
        };
        let to = if stop < 0 {
            len.saturating_add(stop)
        } else {
            stop.min(len - 1)
        };
        if from > to || from >= len {
            return Some(Vec::new());
        }
        let count = usize::try_from(to - from + 1).ok()?;
        if count > max {
            return None;
        }
        let mut out = Vec::with_capacity(count);
        for i in from..=to {
            let index = std::ffi::c_long::try_from(i).ok()?;
            // SAFETY: ListGet returns a new string we own (NULL on error), `index` is in
            // range of the list open in `k`.
            let s = unsafe { super::strings::OwnedStr::from_owned_ptr(get(k, index)) }?;
            out.push(s.as_bytes().to_vec());
        }
        Some(out)
    })?;
    (kind_of(t) == Some(KeyKind::List))
        .then_some(items)
        .flatten()
}

/// The longest string a server may hold in a compact encoding (an integer, or an "embstr" of
/// at most 44 bytes on Redis 7.0, 8.2 and Valkey 8.1). Only longer strings are read through
/// `RedisModule_StringDMA`: for a compact one, DMA converts the value to a plain string first,
/// which would change the key's encoding.
pub const COMPACT_STRING_MAX: usize = 44;

/// A string key as the key API sees it, for its pre-image.
#[derive(Debug, PartialEq, Eq)]
pub enum StrPeek {
    /// The key does not exist.
    Absent,
    /// A string of more than [`COMPACT_STRING_MAX`] bytes, and its absolute expiry.
    Value(Vec<u8>, Option<i64>),
    /// A string that may be compactly encoded (its bytes are not read), and its absolute
    /// expiry: ask the server (`GET`) for its value.
    Short(Option<i64>),
    /// Another type.
    Unknown,
}

/// Reads a string key's value and expiry without a command call and without changing the key
/// (no LRU/LFU touch, no re-encoding): only when that is certain, else [`StrPeek::Unknown`].
pub fn peek_string(ctx: CtxPtr, key: Str<'_>) -> StrPeek {
    let read = |k: *mut raw::RedisModuleKey| -> StrPeek {
        // SAFETY: `k` is the open key `peek` lends; StringDMA in read mode on a string in the
        // plain (raw) encoding returns a pointer into the value without changing it (strings
        // longer than COMPACT_STRING_MAX are never compact); the bytes are copied before the
        // key is closed.
        unsafe {
            let (Some(kind), Some(length), Some(dma)) = (
                raw::RedisModule_KeyType,
                raw::RedisModule_ValueLength,
                raw::RedisModule_StringDMA,
            ) else {
                return StrPeek::Unknown;
            };
            match kind(k) as isize {
                raw::REDISMODULE_KEYTYPE_EMPTY => return StrPeek::Absent,
                raw::REDISMODULE_KEYTYPE_STRING => {}
                _ => return StrPeek::Unknown,
            }
            let exp = raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(k));
            let exp = (exp >= 0).then_some(exp);
            if length(k) <= COMPACT_STRING_MAX {
                return StrPeek::Short(exp);
            }
            let mut len: usize = 0;
            let p = dma(k, &mut len, raw::REDISMODULE_READ as c_int);
            if p.is_null() {
                return StrPeek::Unknown;
            }
            let value = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
            StrPeek::Value(value, exp)
        }
    };
    // Read mode opens nothing for a key that does not exist.
    peek(ctx, key, read).map_or(StrPeek::Absent, |(_, r)| r)
}

/// Opens `key` for reading without touching its LRU/LFU, and returns its type with what `f`
/// reads from it; the key is closed before returning.
fn peek<R>(
    ctx: CtxPtr,
    key: Str<'_>,
    f: impl FnOnce(*mut raw::RedisModuleKey) -> R,
) -> Option<(c_int, R)> {
    let open = super::api!(RedisModule_OpenKey)?;
    // SAFETY: OpenKey/KeyType/CloseKey on a key we open and close here; `key` is alive
    // (borrowed); `f` only reads the key while it is open.
    unsafe {
        let k = open(
            ctx,
            key.as_ptr(),
            (raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH) as c_int,
        );
        if k.is_null() {
            return None;
        }
        let t = raw::RedisModule_KeyType.map_or(0, |g| g(k));
        let out = f(k);
        if let Some(close) = raw::RedisModule_CloseKey {
            close(k.cast());
        }
        Some((t, out))
    }
}

/// Positions (in `argv`, where `argv[0]` is the command name) and flags of the keys of a
/// command that exists and has a valid arity (the caller checks both first: the server then
/// answers NULL only for a command without keys, and txu need not read `errno`, which has no
/// portable accessor in std).
pub fn command_keys(ctx: CtxPtr, argv: &[Str<'_>]) -> Vec<(usize, u32)> {
    let Ok(argc) = c_int::try_from(argv.len()) else {
        return Vec::new();
    };
    let Some(f) = super::api!(RedisModule_GetCommandKeysWithFlags) else {
        return Vec::new();
    };
    let mut num: c_int = 0;
    let mut flags: *mut c_int = ptr::null_mut();
    // SAFETY: GetCommandKeysWithFlags reads `argc` live strings from `argv` and returns two
    // arrays of `num` ints allocated with the module allocator, which we free here.
    unsafe {
        let pos = f(ctx, ptrs(argv), argc, &mut num, &mut flags);
        if pos.is_null() {
            return Vec::new();
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
        out
    }
}

/// Whether the server called a `getkeys-api` command only to learn its keys (cluster
/// routing, `COMMAND GETKEYS`, ACL key checks): the handler then declares them and returns.
pub fn is_keys_position_request(ctx: CtxPtr) -> bool {
    // SAFETY: plain getter on the context of the call in progress.
    super::api!(RedisModule_IsKeysPositionRequest).is_some_and(|f| unsafe { f(ctx) } != 0)
}

/// Declares argument `pos` of the current command as a key with key-spec `flags`
/// (`REDISMODULE_CMD_KEY_*`), during a keys-position request.
pub fn declare_key(ctx: CtxPtr, pos: usize, flags: u32) {
    let Ok(pos) = c_int::try_from(pos) else {
        return;
    };
    let with_flags = super::api!(RedisModule_KeyAtPosWithFlags);
    let plain = super::api!(RedisModule_KeyAtPos);
    // SAFETY: called during a keys-position request of the command in progress.
    unsafe {
        if let Some(f) = with_flags {
            f(ctx, pos, flags as c_int);
        } else if let Some(f) = plain {
            f(ctx, pos);
        }
    }
}

/// Key-spec flags of a key a command only reads.
pub const KEY_READ: u32 = raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS;
/// Key-spec flags of a key a command may read and change.
pub const KEY_READ_WRITE: u32 =
    raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE;

/// A key's type, as the key API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    String,
    List,
    Hash,
    Set,
    ZSet,
    /// A stream or another module's type.
    Other,
}

/// The type and length (elements of a collection, bytes of a string) of a key that exists,
/// read without touching its LRU/LFU or calling a command; `None` when it does not exist.
pub fn key_info(ctx: CtxPtr, key: Str<'_>) -> Option<(KeyKind, usize)> {
    let (t, len) = peek(ctx, key, |k| {
        // SAFETY: `k` is the open key `peek` lends.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(k)) }
    })?;
    Some((kind_of(t)?, len))
}
