//! The `IPCHECK` Redis module: the ipcheck verdict cache, inside Redis.
//!
//! A thin layer over `ipcheck-core`: each subcommand parses its arguments, lets the core
//! normalize the address and encode or decode the entry, and talks to the keyspace through the
//! low-level key API (no `RedisModule_Call` on the hot path). Entries are plain Redis strings with
//! a TTL, so persistence, replication, eviction and every Redis tool keep working; writes reach
//! replicas and the AOF as `SET ... PXAT <absolute ms>` so nothing downstream extends a verdict.
//!
//! Layout:
//! - [`registration`]: the `IPCHECK` container command and its subcommands (raw API, because the
//!   crate's command macro needs Redis 7.2).
//! - [`settings`]: load arguments and the `ipcheck.*` module configs.
//! - [`subcommands`]: one file per subcommand, parse then execute.
//! - [`panic_guard`]: every handler runs under `catch_unwind`; a bug is an error reply, never a
//!   crashed server. [`bugs`] counts every caught panic and logs it, rate-limited.
//! - [`filter`]: a command filter that turns the address argument of GET/SET/DEL into the real
//!   key before Redis checks ACL key patterns and cluster slots; [`acl`] checks the real key in
//!   the handler when a call ever arrives unfiltered.
//! - [`netlist`]: network lists (`IPCHECK NET*`), a module data type with its persistence.
//! - [`keys`], [`prefix`], [`ffi`], [`error`], [`stats`]: key names, the key prefix in force
//!   (read without a lock), raw API wrappers, error replies, counters.
//!
//! The full command reference is in the workspace README.md ("The IPCHECK command").

pub mod acl;
pub mod bugs;
pub mod clock;
pub mod error;
pub mod ffi;
pub mod filter;
pub mod keys;
pub mod netlist;
pub mod panic_guard;
pub mod prefix;
pub mod registration;
pub mod settings;
pub mod stats;
pub mod subcommands;

use redis_module::{raw, Context, RedisString, Status};

use crate::ffi::Ctx;
use crate::settings::LoadArgs;

/// Logs a warning to the Redis log. With a context Redis prefixes the line with `<ipcheck>`;
/// without one (the command filter has none) with `<module>`, so the line then names us itself.
pub fn log_warning(ctx: Option<Ctx>, message: &str) {
    let line = match ctx {
        Some(_) => error::safe_line(message),
        None => error::safe_line(&format!("ipcheck: {message}")),
    };
    let ptr = ctx.map_or(std::ptr::null_mut(), Ctx::as_ptr);
    // SAFETY: a live ctx or null, which Redis accepts; "%s" with a NUL-terminated argument.
    unsafe {
        if let Some(log) = raw::RedisModule_Log {
            log(ptr, c"warning".as_ptr(), c"%s".as_ptr(), line.as_ptr());
        }
    }
}

/// Module initialisation: check the API, parse load arguments, register configs and commands.
#[cfg_attr(test, allow(dead_code))]
fn init(ctx: &Context, args: &[RedisString]) -> Status {
    // SAFETY: the context Redis passed to OnLoad, which is running; `ctx` does not leave it.
    let ctx = unsafe { Ctx::new(ctx.ctx) };
    match std::panic::catch_unwind(|| try_init(ctx, args)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(why)) => {
            log_warning(Some(ctx), &format!("refusing to load: {why}"));
            Status::Err
        }
        Err(_) => {
            log_warning(Some(ctx), "refusing to load: bug during initialisation");
            Status::Err
        }
    }
}

fn try_init(ctx: Ctx, args: &[RedisString]) -> Result<(), String> {
    if let Some(name) = ffi::missing_api() {
        return Err(format!(
            "this Redis lacks {name}; Redis 7.0 or newer is required"
        ));
    }
    let raw_args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let parsed = LoadArgs::parse(&raw_args).map_err(|e| e.to_string())?;
    settings::set_cluster_mode(ctx.flags() & raw::REDISMODULE_CTX_FLAGS_CLUSTER as i32 != 0);
    settings::install(ctx, &parsed)?;
    ctx.signal_modified_keys_explicitly();
    netlist::datatype::register(ctx)?;
    registration::register(ctx)?;
    filter::register(ctx)?;
    Ok(())
}

#[cfg(not(test))]
redis_module::redis_module! {
    name: "ipcheck",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [],
}
