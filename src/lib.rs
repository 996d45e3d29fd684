//! txu: Redis transactions that roll back. This file only registers things with the server;
//! see `commands/` (handlers), `exec/` (executor), `undo/` (undo log) and `server.rs` (FFI).

// Unit tests build without the registration below, so most FFI code is unused there.
#![cfg_attr(test, allow(dead_code))]

mod commands;
mod config;
mod error;
mod exec;
mod server;
mod stats;
mod undo;

#[cfg(not(test))]
mod module {
    use crate::{commands, config, server, stats};
    use redis_module::{
        configuration::ConfigurationFlags, raw, redis_module, Context, RedisString, Status,
    };

    fn init(ctx: &Context, _args: &[RedisString]) -> Status {
        let raw_ctx = ctx.ctx;
        for (name, handler, flags) in commands::COMMANDS {
            if let Err(e) = server::create_command(raw_ctx, name, *handler, flags) {
                server::log_warning(raw_ctx, &format!("txu: {e}"));
                return Status::Err;
            }
        }
        let events: [(u64, server::EventFn); 2] = [
            (
                raw::REDISMODULE_EVENT_CLIENT_CHANGE,
                commands::on_client_change,
            ),
            (
                raw::REDISMODULE_EVENT_MODULE_CHANGE,
                commands::on_module_change,
            ),
        ];
        for (id, f) in events {
            if let Err(e) = server::subscribe_event(raw_ctx, id, f) {
                server::log_warning(raw_ctx, &format!("txu: {e}"));
                return Status::Err;
            }
        }
        // Replaces the crate's default INFO callback with ours.
        // SAFETY: registration at load time.
        unsafe {
            if let Some(f) = raw::RedisModule_RegisterInfoFunc {
                f(raw_ctx, Some(stats::info));
            }
        }
        server::log_notice(raw_ctx, "txu: loaded");
        Status::Ok
    }

    redis_module! {
        name: "txu",
        version: 1,
        allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
        data_types: [],
        init: init,
        configurations: [
            i64: [
                ["max-queued", &config::MAX_QUEUED, config::MAX_QUEUED_DEFAULT, config::MAX_QUEUED_MIN, config::MAX_QUEUED_MAX, ConfigurationFlags::DEFAULT, None],
                ["rollback-attempts", &config::ROLLBACK_ATTEMPTS, config::ROLLBACK_ATTEMPTS_DEFAULT, config::ROLLBACK_ATTEMPTS_MIN, config::ROLLBACK_ATTEMPTS_MAX, ConfigurationFlags::DEFAULT, None],
            ],
            string: [],
            bool: [],
            enum: [],
            module_args_as_configuration: true,
        ]
    }
}
