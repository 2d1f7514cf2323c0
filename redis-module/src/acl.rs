//! ACL checks on the real key, for calls whose key argument Redis saw only as an address.
//!
//! Redis matches ACL key patterns against the declared key argument. The command filter
//! ([`crate::filter`]) rewrites `IPCHECK GET <address>` to `IPCHECK GET <key>` before Redis
//! checks ACLs, so normally Redis itself checks the real key. When a call reaches a handler
//! with the address still in place (a path that skipped filters), Redis checked patterns
//! against the address text, which proves nothing about the key: the handler checks the key
//! here, so a user can never read or write an entry their key patterns forbid.

use std::os::raw::c_int;

use redis_module::raw;

use crate::error::CommandError;
use crate::ffi::{api, Ctx, RString};

/// What a subcommand does to the key, in ACL terms.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Reads and returns the entry (`%R~`).
    Read,
    /// Reads then overwrites (`%RW~`).
    Write,
    /// Deletes (`%W~`).
    Delete,
}

/// Refuses the call unless the current user may touch `key` as `access` says.
pub fn check(ctx: Ctx, key: &RString, key_text: &str, access: Access) -> Result<(), CommandError> {
    let flags = match access {
        Access::Read => raw::REDISMODULE_CMD_KEY_ACCESS,
        Access::Write => raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE,
        Access::Delete => raw::REDISMODULE_CMD_KEY_DELETE,
    } as c_int;
    // SAFETY: valid ctx; every object created here is freed before returning.
    unsafe {
        let name = api!(RedisModule_GetCurrentUserName)(ctx.as_ptr());
        if name.is_null() {
            // No client user (AOF loading, the replication link): internal, unrestricted.
            return Ok(());
        }
        let user = api!(RedisModule_GetModuleUserFromUserName)(name);
        api!(RedisModule_FreeString)(ctx.as_ptr(), name);
        if user.is_null() {
            return Err(CommandError::NoPermission(key_text.to_owned()));
        }
        let rc = api!(RedisModule_ACLCheckKeyPermissions)(user, key.as_ptr(), flags);
        api!(RedisModule_FreeModuleUser)(user);
        if rc != raw::REDISMODULE_OK as c_int {
            return Err(CommandError::NoPermission(key_text.to_owned()));
        }
    }
    Ok(())
}
