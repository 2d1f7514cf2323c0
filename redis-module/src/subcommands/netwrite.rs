//! What every network-list write does after changing the keyspace.

use std::ffi::CStr;

use redis_module::raw;

use crate::ffi::{api, Ctx, RString};

/// Signals the change (WATCH, client-side caching), fires a keyspace event and sends the command
/// verbatim to replicas and the AOF: its expiries are absolute, so a replay means the same.
pub fn finish_write(ctx: Ctx, key: &RString, event: &CStr) {
    ctx.signal_modified(key);
    ctx.notify(raw::REDISMODULE_NOTIFY_GENERIC, event, key);
    // SAFETY: valid ctx during the handler.
    unsafe { api!(RedisModule_ReplicateVerbatim)(ctx.as_ptr()) };
}
