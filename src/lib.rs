//! txu: Redis transactions that roll back. This file only registers things with the server;
//! see `commands/` (handlers), `exec/` (executor), `undo/` (undo log) and `server.rs` (FFI).

// Unit tests build without the registration below, so most FFI code is unused there.
#![cfg_attr(test, allow(dead_code))]

mod codec;
mod commands;
mod config;
mod error;
mod exec;
mod server;
mod stats;
mod store;
mod tasks;
mod undo;

#[cfg(not(test))]
mod module {
    use crate::{commands, config, server, stats, store};
    use redis_module::{
        configuration::{register_i64_configuration, ConfigurationFlags},
        raw, redis_module, Context, RedisString, Status,
    };

    fn init(ctx: &Context, args: &[RedisString]) -> Status {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        register_configs(ctx);
        // After LoadConfigs, which sets every config not in the config file to its default.
        match config::apply_module_args(&args).and_then(|()| register(ctx.ctx)) {
            Ok(()) => Status::Ok,
            Err(e) => {
                server::log_warning(ctx.ctx, &format!("txu: {e}"));
                Status::Err
            }
        }
    }

    fn register_configs(ctx: &Context) {
        for c in &config::ALL {
            register_i64_configuration(
                ctx,
                c.name,
                &c.value,
                c.default,
                c.min,
                c.max,
                ConfigurationFlags::DEFAULT,
                None,
            );
        }
        // SAFETY: load-time call, after the configs are registered.
        unsafe {
            if let Some(load) = raw::RedisModule_LoadConfigs {
                load(ctx.ctx);
            }
        }
    }

    fn register(ctx: server::CtxPtr) -> Result<(), String> {
        let facts = server::server_facts(ctx);
        store::create_type::<store::undolog::StoredLog>(ctx, &store::undolog::TYPE)?;
        store::create_type::<store::tasks::StoredTasks>(ctx, &store::tasks::TYPE)?;
        if facts.acl_category {
            server::add_acl_category(ctx, c"txu")?;
        }
        for c in commands::COMMANDS {
            server::create_command(ctx, c.name, c.handler, c.flags)?;
            if facts.command_acl_categories {
                let cats = if facts.acl_category {
                    c"txu transaction"
                } else {
                    c"transaction"
                };
                server::set_command_acl_categories(ctx, c.name, cats)?;
            }
            if facts.command_info {
                server::set_command_docs(ctx, c.name, c.summary, c.complexity, c"0.1.0")?;
            }
        }
        let events: [(u64, server::EventFn); 3] = [
            (
                raw::REDISMODULE_EVENT_CLIENT_CHANGE,
                commands::on_client_change,
            ),
            (raw::REDISMODULE_EVENT_FLUSHDB, commands::on_flush),
            (
                raw::REDISMODULE_EVENT_MODULE_CHANGE,
                commands::on_module_change,
            ),
        ];
        for (id, f) in events {
            server::subscribe_event(ctx, id, f)?;
        }
        server::subscribe_keyspace(
            ctx,
            raw::REDISMODULE_NOTIFY_ALL,
            commands::internal::on_keyspace_event,
        )?;
        if facts.filter_client_id {
            commands::capture::register(ctx)?;
        }
        if !commands::timer::start(ctx) {
            return Err("failed to start the timer".into());
        }
        // Replaces the crate's default INFO callback with ours.
        // SAFETY: registration at load time.
        unsafe {
            if let Some(f) = raw::RedisModule_RegisterInfoFunc {
                f(ctx, Some(stats::info));
            }
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        server::log_notice(
            ctx,
            &format!(
                "txu {} loaded on {} {}: capture={} acl-category={} command-acl-categories={} command-docs={}",
                env!("CARGO_PKG_VERSION"),
                facts.name,
                facts.version,
                yn(facts.filter_client_id),
                yn(facts.acl_category),
                yn(facts.command_acl_categories),
                yn(facts.command_info),
            ),
        );
        Ok(())
    }

    redis_module! {
        name: "txu",
        version: 1,
        allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
        data_types: [],
        init: init,
    }
}
