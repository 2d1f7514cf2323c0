//! Registers `IPCHECK` as a Redis 7 container command with real subcommands (`ipcheck|get`, ...),
//! through the raw API: the `redis-module` crate's `#[command]` macro and command-table ACL
//! categories call APIs that exist only from Redis 7.2 and make the load fail on 7.0.
//!
//! Real subcommands give each one its own flags (`readonly fast` vs `write deny-oom`), its own
//! `COMMAND INFO` entry, its own ACL rule (`+ipcheck|get`) and its own key spec, so cluster
//! clients can route by the address argument and a read-only ACL user can run the read-only
//! ones. See the crate README for how key-spec flags interact with ACL key patterns.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr;

use redis_module::raw;

use crate::ffi::{api, Ctx};

/// How a subcommand touches the key named by its address argument (`argv[2]`).
#[derive(Clone, Copy)]
enum KeyAccess {
    /// Reads nothing.
    None,
    /// Reads the entry and returns it.
    Read,
    /// Reads the entry to decide (manual pins), then overwrites it.
    Write,
    /// Removes the entry.
    Delete,
}

impl KeyAccess {
    fn spec_flags(self) -> u64 {
        let f = match self {
            KeyAccess::None => 0,
            KeyAccess::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
            KeyAccess::Write => raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE,
            KeyAccess::Delete => raw::REDISMODULE_CMD_KEY_RM | raw::REDISMODULE_CMD_KEY_DELETE,
        };
        u64::from(f)
    }
}

/// One subcommand's registration.
struct Subcommand {
    name: &'static CStr,
    handler: raw::RedisModuleCmdFunc,
    flags: &'static CStr,
    arity: c_int,
    key: KeyAccess,
    summary: &'static CStr,
}

/// Declares `extern "C"` entry points that run a subcommand through the panic guard.
macro_rules! entry_points {
    ($($fn_name:ident => $handler:path),* $(,)?) => {
        $(
            unsafe extern "C" fn $fn_name(
                ctx: *mut raw::RedisModuleCtx,
                argv: *mut *mut raw::RedisModuleString,
                argc: c_int,
            ) -> c_int {
                // SAFETY: forwarding exactly what Redis passed.
                unsafe { crate::panic_guard::run(ctx, argv, argc, $handler) }
            }
        )*
    };
}

entry_points! {
    get_cmd => crate::subcommands::get::run,
    set_cmd => crate::subcommands::set::run,
    del_cmd => crate::subcommands::del::run,
    key_cmd => crate::subcommands::key::run,
    stats_cmd => crate::subcommands::stats::run,
    help_cmd => crate::subcommands::help::run,
}

const SUBCOMMANDS: [Subcommand; 6] = [
    Subcommand {
        name: c"get",
        handler: Some(get_cmd),
        flags: c"readonly fast",
        arity: 3,
        key: KeyAccess::Read,
        summary: c"Returns the cached verdict for an address.",
    },
    Subcommand {
        name: c"set",
        handler: Some(set_cmd),
        flags: c"write deny-oom",
        arity: -4,
        key: KeyAccess::Write,
        summary: c"Caches a verdict for an address, with a TTL.",
    },
    Subcommand {
        name: c"del",
        handler: Some(del_cmd),
        flags: c"write deny-oom",
        arity: 3,
        key: KeyAccess::Delete,
        summary: c"Deletes the cached verdict for an address.",
    },
    Subcommand {
        name: c"key",
        handler: Some(key_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 3,
        key: KeyAccess::None,
        summary: c"Returns the Redis key an address maps to.",
    },
    Subcommand {
        name: c"stats",
        handler: Some(stats_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 2,
        key: KeyAccess::None,
        summary: c"Returns the module's counters since load.",
    },
    Subcommand {
        name: c"help",
        handler: Some(help_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 2,
        key: KeyAccess::None,
        summary: c"Shows helpful text about the different subcommands.",
    },
];

/// Registers the `IPCHECK` container and all its subcommands.
pub fn register(ctx: Ctx) -> Result<(), String> {
    // SAFETY: load ctx; names are NUL-terminated and copied by Redis.
    unsafe {
        if api!(RedisModule_CreateCommand)(
            ctx.as_ptr(),
            c"ipcheck".as_ptr(),
            None,
            c"".as_ptr(),
            0,
            0,
            0,
        ) != raw::REDISMODULE_OK as c_int
        {
            return Err("cannot create command IPCHECK (name taken?)".to_owned());
        }
        let parent = api!(RedisModule_GetCommand)(ctx.as_ptr(), c"ipcheck".as_ptr());
        if parent.is_null() {
            return Err("cannot look up command IPCHECK".to_owned());
        }
        set_info(parent, -2, c"The ipcheck verdict cache.", ptr::null_mut())?;
        for sub in &SUBCOMMANDS {
            let (first, last) = match sub.key {
                KeyAccess::None => (0, 0),
                _ => (2, 2),
            };
            if api!(RedisModule_CreateSubcommand)(
                parent,
                sub.name.as_ptr(),
                sub.handler,
                sub.flags.as_ptr(),
                first,
                last,
                i32::from(first != 0),
            ) != raw::REDISMODULE_OK as c_int
            {
                return Err(format!(
                    "cannot create subcommand IPCHECK {}",
                    sub.name.to_string_lossy()
                ));
            }
            let full = format!("ipcheck|{}\0", sub.name.to_string_lossy());
            let cmd = api!(RedisModule_GetCommand)(ctx.as_ptr(), full.as_ptr().cast());
            if cmd.is_null() {
                return Err(format!(
                    "cannot look up subcommand {}",
                    full.trim_end_matches('\0')
                ));
            }
            let mut specs = key_specs(sub.key);
            let specs_ptr = match sub.key {
                KeyAccess::None => ptr::null_mut(),
                _ => specs.as_mut_ptr(),
            };
            set_info(cmd, sub.arity, sub.summary, specs_ptr)?;
        }
    }
    Ok(())
}

/// A key spec for `argv[2]` followed by the zeroed terminator Redis expects.
fn key_specs(access: KeyAccess) -> [raw::RedisModuleCommandKeySpec; 2] {
    // SAFETY: an all-zero key spec is the documented terminator (BS_INVALID, null notes).
    let mut specs: [raw::RedisModuleCommandKeySpec; 2] = unsafe { std::mem::zeroed() };
    specs[0].flags = access.spec_flags();
    specs[0].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    specs[0].bs.index.pos = 2;
    specs[0].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
    specs[0].fk.range = raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
        lastkey: 0,
        keystep: 1,
        limit: 0,
    };
    specs
}

/// `RedisModule_SetCommandInfo` with the version-1 layout Redis 7.0 understands.
///
/// # Safety
/// `cmd` comes from `GetCommand`; `key_specs` is null or a terminated array.
unsafe fn set_info(
    cmd: *mut raw::RedisModuleCommand,
    arity: c_int,
    summary: &CStr,
    key_specs: *mut raw::RedisModuleCommandKeySpec,
) -> Result<(), String> {
    // The C header builds this from a static; bindgen does not carry statics over.
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: summary.as_ptr(),
        complexity: c"O(1)".as_ptr(),
        since: c"0.1.0".as_ptr(),
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity,
        key_specs,
        args: ptr::null_mut(),
    };
    // SAFETY: per the function contract; Redis copies everything it keeps.
    if unsafe { api!(RedisModule_SetCommandInfo)(cmd, &info) } != raw::REDISMODULE_OK as c_int {
        return Err("RedisModule_SetCommandInfo refused the command info".to_owned());
    }
    Ok(())
}
