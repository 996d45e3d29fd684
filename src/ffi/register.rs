//! Load-time registration: commands (with a panic-safe entry point each), ACL categories,
//! command docs, configs and the INFO section.

use super::strings::Str;
use super::{reply, CtxPtr, StrPtr};
use crate::error::TxuError;
use redis_module::raw;
use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

/// What a command handler sees: its context and arguments (`args[0]` is the command name).
pub type Handler = for<'a> fn(CtxPtr, &'a [Str<'a>]) -> c_int;

/// The C entry point Redis calls for a command.
pub type CmdFn = unsafe extern "C" fn(CtxPtr, *mut StrPtr, c_int) -> c_int;

/// The C entry point of a [`Handler`]: `command_entry!(path::to::handler)`.
macro_rules! command_entry {
    ($handler:path) => {{
        unsafe extern "C" fn entry(
            ctx: $crate::ffi::CtxPtr,
            argv: *mut $crate::ffi::StrPtr,
            argc: ::std::ffi::c_int,
        ) -> ::std::ffi::c_int {
            // SAFETY: Redis calls a command with `argc` live arguments in `argv`, valid for
            // the duration of the call.
            unsafe { $crate::ffi::register::run_command(ctx, argv, argc, $handler) }
        }
        entry as $crate::ffi::register::CmdFn
    }};
}
pub(crate) use command_entry;

/// Runs a handler, turning a panic into an error reply: a panic must never unwind into (and
/// abort) the server.
///
/// # Safety
/// `argv` must hold `argc` strings alive for the duration of the call.
pub unsafe fn run_command(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int, h: Handler) -> c_int {
    let args = Str::argv(argv, argc);
    match catch_unwind(AssertUnwindSafe(|| h(ctx, args))) {
        Ok(rc) => rc,
        Err(_) => {
            super::context::log_warning(
                ctx,
                "txu: internal error (panic caught in a command handler)",
            );
            reply::error(ctx, &TxuError::Panic)
        }
    }
}

pub fn create_command(ctx: CtxPtr, name: &CStr, f: CmdFn, flags: &CStr) -> Result<(), String> {
    let create =
        super::api!(RedisModule_CreateCommand).ok_or("RedisModule_CreateCommand missing")?;
    // SAFETY: registration at load time with static C strings.
    let rc = unsafe { create(ctx, name.as_ptr(), Some(f), flags.as_ptr(), 0, 0, 0) };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!(
            "failed to create command {}",
            name.to_string_lossy()
        ))
    }
}

/// Sets every registered config to its value from the config file or its default (after the
/// configs are registered with the crate's `register_i64_configuration`).
pub fn load_configs(ctx: CtxPtr) {
    // SAFETY: load-time call, after the configs are registered.
    unsafe {
        if let Some(load) = raw::RedisModule_LoadConfigs {
            load(ctx);
        }
    }
}

/// The fields of the module's `INFO` section, produced on demand.
pub type InfoFn = fn() -> Vec<(&'static CStr, u64)>;

static INFO: OnceLock<InfoFn> = OnceLock::new();

/// Registers the module's INFO section (replacing the crate's default callback).
pub fn register_info(ctx: CtxPtr, f: InfoFn) {
    let _ = INFO.set(f);
    // SAFETY: registration at load time.
    unsafe {
        if let Some(reg) = raw::RedisModule_RegisterInfoFunc {
            reg(ctx, Some(info));
        }
    }
}

unsafe extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    let _ = catch_unwind(|| {
        let (Some(fields), Some(section), Some(field)) = (
            INFO.get(),
            raw::RedisModule_InfoAddSection,
            raw::RedisModule_InfoAddFieldULongLong,
        ) else {
            return;
        };
        // SAFETY: Redis passes a valid info context; names are C strings. The section name
        // is empty: field names get the module's `txu_` prefix from the server.
        unsafe {
            section(ctx, c"".as_ptr());
            for (name, v) in fields() {
                field(ctx, name.as_ptr(), v);
            }
        }
    });
}

/// Adds a module ACL category (load time only).
pub fn add_acl_category(ctx: CtxPtr, name: &CStr) -> Result<(), String> {
    let f = super::api!(RedisModule_AddACLCategory).ok_or("AddACLCategory missing")?;
    // SAFETY: load-time registration with a static C string.
    let rc = unsafe { f(ctx, name.as_ptr()) };
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

/// One argument of a command, as `COMMAND DOCS` shows it (and redis-cli's hints).
pub struct Arg {
    pub name: &'static CStr,
    pub kind: ArgKind,
    /// The word before the value (`RETRY`), or the token itself for a `PureToken`.
    pub token: Option<&'static CStr>,
    pub optional: bool,
    pub multiple: bool,
}

/// What an argument holds.
pub enum ArgKind {
    String,
    Integer,
    /// Only its token (`CAPTURE`).
    PureToken,
    /// One of these.
    OneOf(&'static [Arg]),
    /// These, in order.
    Block(&'static [Arg]),
}

impl Arg {
    /// A required argument of `kind`.
    pub const fn new(name: &'static CStr, kind: ArgKind) -> Arg {
        Arg {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
        }
    }

    /// A pure token (its name is its token).
    pub const fn token(name: &'static CStr) -> Arg {
        Arg {
            token: Some(name),
            ..Arg::new(name, ArgKind::PureToken)
        }
    }

    pub const fn with_token(self, token: &'static CStr) -> Arg {
        Arg {
            token: Some(token),
            ..self
        }
    }

    pub const fn optional(self) -> Arg {
        Arg {
            optional: true,
            ..self
        }
    }

    pub const fn multiple(self) -> Arg {
        Arg {
            multiple: true,
            ..self
        }
    }
}

/// `args` as the module API's NULL-terminated arrays, each nested array kept alive in `store`
/// (the server copies them during `SetCommandInfo`).
fn raw_args(
    args: &[Arg],
    store: &mut Vec<Vec<raw::RedisModuleCommandArg>>,
) -> *mut raw::RedisModuleCommandArg {
    // SAFETY: an all-zero `RedisModuleCommandArg` (NULL pointers, 0 ints) is the terminator the
    // API asks for.
    let zero = || unsafe { std::mem::zeroed::<raw::RedisModuleCommandArg>() };
    let mut out = Vec::with_capacity(args.len() + 1);
    for a in args {
        let (type_, subargs) = match &a.kind {
            ArgKind::String => (
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                ptr::null_mut(),
            ),
            ArgKind::Integer => (
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
                ptr::null_mut(),
            ),
            ArgKind::PureToken => (
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
                ptr::null_mut(),
            ),
            ArgKind::OneOf(sub) => (
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF,
                raw_args(sub, store),
            ),
            ArgKind::Block(sub) => (
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK,
                raw_args(sub, store),
            ),
        };
        let mut flags = raw::REDISMODULE_CMD_ARG_NONE;
        if a.optional {
            flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
        }
        if a.multiple {
            flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
        }
        let mut r = zero();
        r.name = a.name.as_ptr();
        r.type_ = type_;
        r.key_spec_index = -1;
        r.token = a.token.map_or(ptr::null(), CStr::as_ptr);
        r.flags = c_int::try_from(flags).unwrap_or(0);
        r.subargs = subargs;
        out.push(r);
    }
    out.push(zero());
    // The vector's heap buffer does not move when `store` grows.
    let p = out.as_mut_ptr();
    store.push(out);
    p
}

/// Sets the `COMMAND DOCS` summary, complexity, first version and arguments of one of our
/// commands. Arity is left as registered (0 here means "keep"). `keys`: a note for the one key
/// spec of a command whose keys its `getkeys-api` callback names (`TXU.RUN`): where they are
/// and what happens to them is unknown to the spec (`VARIABLE_FLAGS` sends the server to the
/// callback for routing and ACL checks, as without a spec); none for the others (see
/// `commands::COMMANDS`).
pub fn set_command_docs(
    ctx: CtxPtr,
    cmd: &CStr,
    summary: &CStr,
    complexity: &CStr,
    since: &CStr,
    args: &[Arg],
    keys: Option<&CStr>,
) -> Result<(), String> {
    // SAFETY: an all-zero key spec (NULL notes, 0 flags, type 0 = invalid) ends the array.
    let zero = || unsafe { std::mem::zeroed::<raw::RedisModuleCommandKeySpec>() };
    let mut key_specs = Vec::new();
    if let Some(notes) = keys {
        let mut spec = zero();
        spec.notes = notes.as_ptr();
        spec.flags = u64::from(
            raw::REDISMODULE_CMD_KEY_RW
                | raw::REDISMODULE_CMD_KEY_ACCESS
                | raw::REDISMODULE_CMD_KEY_UPDATE
                | raw::REDISMODULE_CMD_KEY_VARIABLE_FLAGS,
        );
        spec.begin_search_type =
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_UNKNOWN;
        spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_UNKNOWN;
        key_specs.push(spec);
        key_specs.push(zero());
    }
    let mut store = Vec::new();
    let raw_args = if args.is_empty() {
        ptr::null_mut()
    } else {
        raw_args(args, &mut store)
    };
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
        key_specs: if key_specs.is_empty() {
            ptr::null_mut()
        } else {
            key_specs.as_mut_ptr()
        },
        args: raw_args,
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
