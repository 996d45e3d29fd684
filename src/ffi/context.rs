//! The server and the current context: client id, role and state flags, the clock, memory,
//! logging, and which optional APIs this server has.

use super::CtxPtr;
use redis_module::{raw, Context, ContextFlags};
use std::ffi::{CStr, CString};

pub fn client_id(ctx: CtxPtr) -> u64 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_GetClientId.map_or(0, |f| f(ctx)) }
}

fn flags(ctx: CtxPtr) -> ContextFlags {
    if super::api!(RedisModule_GetContextFlags).is_none() {
        return ContextFlags::empty();
    }
    Context::new(ctx).get_flags()
}

/// Inside `MULTI` (or a script).
pub fn in_multi(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::MULTI)
}

pub fn is_primary(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::MASTER)
}

pub fn is_loading(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::LOADING)
}

/// The server runs in cluster mode.
pub fn is_cluster(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::CLUSTER)
}

/// A replica that refuses writes from clients (`replica-read-only yes`).
pub fn is_readonly_replica(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::SLAVE | ContextFlags::READONLY)
}

/// The context's flags read once, for a command that asks several questions of them.
pub struct State(ContextFlags);

impl State {
    pub fn of(ctx: CtxPtr) -> State {
        State(flags(ctx))
    }

    /// As [`is_loading`].
    pub fn loading(&self) -> bool {
        self.0.contains(ContextFlags::LOADING)
    }

    /// As [`is_readonly_replica`].
    pub fn readonly_replica(&self) -> bool {
        self.0
            .contains(ContextFlags::SLAVE | ContextFlags::READONLY)
    }
}

/// The command came over the replication link from our primary.
pub fn is_replicated(ctx: CtxPtr) -> bool {
    flags(ctx).contains(ContextFlags::REPLICATED)
}

/// Wall-clock milliseconds (cached by the server per command).
pub fn now_ms() -> i64 {
    // SAFETY: plain getter.
    unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) }
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

fn log(ctx: CtxPtr, level: &CStr, msg: &str) {
    // Not the crate's logger: it panics on a NUL byte, and messages may quote client data.
    let Ok(c) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: format "%s" with one C string argument; a NULL context is allowed.
    unsafe {
        if let Some(f) = raw::RedisModule_Log {
            f(ctx, level.as_ptr(), c"%s".as_ptr(), c.as_ptr());
        }
    }
}

pub fn log_notice(ctx: CtxPtr, msg: &str) {
    log(ctx, c"notice", msg);
}

pub fn log_warning(ctx: CtxPtr, msg: &str) {
    log(ctx, c"warning", msg);
}

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
