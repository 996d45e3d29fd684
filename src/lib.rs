//! txu: Redis transactions that roll back. This file only registers things with the server;
//! see `ARCHITECTURE.md` for who calls whom: `commands/` (handlers) → `exec/` and `runner/`
//! (the engine) → `store/` (txu's keys) → `ffi/` (all raw FFI), with the pure `undo/`,
//! `tasks/`, `error`, `codec` and `config` usable from every layer.

// Unit tests build without the registration below, so most FFI code is unused there.
#![cfg_attr(test, allow(dead_code))]

mod cluster;
mod codec;
mod commands;
mod config;
mod error;
mod exec;
mod fasthash;
mod ffi;
mod info;
mod runner;
mod stats;
mod store;
mod tasks;
mod undo;

/// The crate's version as `MODULE LIST` reports it: major × 10000 + minor × 100 + patch (0.2.0
/// → 200, the numbering RedisJSON uses). A part over 99 (minor, patch) would overlap the next,
/// so the build fails instead.
pub const MODULE_VERSION: i32 = version_number(env!("CARGO_PKG_VERSION"));

const fn version_number(v: &str) -> i32 {
    let b = v.as_bytes();
    let (mut parts, mut n, mut i) = ([0i32; 3], 0usize, 0usize);
    while i < b.len() && n < 3 {
        let c = b[i];
        if c == b'.' {
            n += 1;
        } else if c.is_ascii_digit() {
            parts[n] = parts[n] * 10 + (c - b'0') as i32;
        } else {
            // A pre-release or build suffix (`-rc1`, `+x`) ends the number.
            break;
        }
        i += 1;
    }
    assert!(
        parts[1] < 100 && parts[2] < 100,
        "minor and patch must be below 100"
    );
    parts[0] * 10000 + parts[1] * 100 + parts[2]
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn versions_number_like_redisjson() {
        assert_eq!(super::version_number("0.2.0"), 200);
        assert_eq!(super::version_number("2.4.7"), 20407);
        assert_eq!(super::version_number("1.10.3-rc1"), 11003);
        assert_eq!(
            super::MODULE_VERSION,
            super::version_number(env!("CARGO_PKG_VERSION"))
        );
    }
}

#[cfg(not(test))]
mod module {
    use crate::ffi::{context, events, register, CtxPtr};
    use crate::{commands, config, exec, info, runner, store};
    use redis_module::{
        configuration::{register_i64_configuration, ConfigurationFlags},
        redis_module, Context, RedisString, Status,
    };

    fn init(ctx: &Context, args: &[RedisString]) -> Status {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        register_configs(ctx);
        // After LoadConfigs, which sets every config not in the config file to its default.
        match config::apply_module_args(&args).and_then(|()| register_all(ctx.ctx)) {
            Ok(()) => Status::Ok,
            Err(e) => {
                context::log_warning(ctx.ctx, &format!("txu: {e}"));
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
        register::load_configs(ctx.ctx);
    }

    fn register_all(ctx: CtxPtr) -> Result<(), String> {
        let facts = context::server_facts(ctx);
        store::register_types(ctx)?;
        if facts.acl_category {
            register::add_acl_category(ctx, c"txu")?;
        }
        for c in commands::COMMANDS {
            register::create_command(ctx, c.name, c.handler, c.flags)?;
            if facts.command_acl_categories {
                let cats = if facts.acl_category {
                    c"txu transaction"
                } else {
                    c"transaction"
                };
                register::set_command_acl_categories(ctx, c.name, cats)?;
            }
            if facts.command_info {
                register::set_command_docs(
                    ctx,
                    c.name,
                    c.summary,
                    c.complexity,
                    c"0.1.0",
                    c.args,
                    c.keys,
                )?;
            }
        }
        // TXU.RUN declares which of its keys a command only reads from this cache, in a
        // context where asking the server is not allowed: fill it now.
        exec::catalog::warm(ctx);
        events::on_client_disconnected(ctx, commands::tx::client_gone)?;
        events::on_flush_start(ctx, store::on_flush)?;
        events::on_module_change(ctx, exec::catalog::clear)?;
        let cluster = context::is_cluster(ctx);
        // Outside a cluster, keyspace notifications are subscribed to when first needed (an
        // undo log is stored: retained, pending, loaded; this server becomes a primary holding
        // logs); in a cluster at once, since a slot moving here brings logs without any of
        // those.
        events::on_keyspace(
            ctx,
            exec::conflict::holds_logs,
            exec::conflict::key_changed,
            cluster,
        )?;
        events::on_loaded(ctx, exec::conflict::logs_may_have_arrived)?;
        events::on_role_primary(ctx, exec::conflict::logs_may_have_arrived)?;
        store::set_cluster(cluster);
        commands::capture::register(ctx, facts.filter_client_id, cluster)?;
        if !runner::start(ctx) {
            return Err("failed to start the timer".into());
        }
        // Replaces the crate's default INFO callback with ours.
        register::register_info(ctx, info::fields);
        let yn = |b: bool| if b { "yes" } else { "no" };
        context::log_notice(
            ctx,
            &format!(
                "txu {} (MODULE LIST ver {}) loaded on {} {}: capture={} acl-category={} command-acl-categories={} command-docs={}",
                env!("CARGO_PKG_VERSION"),
                crate::MODULE_VERSION,
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
        version: crate::MODULE_VERSION,
        allocator: (crate::ffi::alloc::PooledAlloc, crate::ffi::alloc::PooledAlloc::new()),
        data_types: [],
        init: init,
    }
}
