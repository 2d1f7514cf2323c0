//! Registers `IPCHECK` as a Redis 7 container command with real subcommands (`ipcheck|get`, ...),
//! through the raw API: the `redis-module` crate's `#[command]` macro and command-table ACL
//! categories call APIs that exist only from Redis 7.2 and make the load fail on 7.0.
//!
//! Real subcommands give each one its own flags (`readonly fast` vs `write deny-oom`), its own
//! `COMMAND INFO` entry, its own ACL rule (`+ipcheck|get`) and its own key spec, so cluster
//! clients can route by the address argument and a read-only ACL user can run the read-only
//! ones. See the workspace README ("ACL") for how key-spec flags interact with ACL key patterns.
//!
//! The lean read `IPCHECK.LGET` is a command of its own, described with the same row shape:
//! Redis's subcommand dispatch would cost it more than all of its own work. The subcommand
//! `IPCHECK LGET` is its previous form, kept for the rules and services that name it.

use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::ptr;

use ipcheck_core::protocol::SET_OPTIONS;
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
    /// Reads the network list named by `argv[2]`.
    ListRead,
    /// Changes the network list named by `argv[2]` (adds, replaces, removes networks).
    ListWrite,
    /// Reads every network list from `argv[3]` to the last argument (`NETMATCH`).
    ListsRead,
}

impl KeyAccess {
    fn spec_flags(self) -> u64 {
        let f = match self {
            KeyAccess::None => 0,
            KeyAccess::Read | KeyAccess::ListRead | KeyAccess::ListsRead => {
                raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS
            }
            KeyAccess::Write | KeyAccess::ListWrite => {
                raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE
            }
            KeyAccess::Delete => raw::REDISMODULE_CMD_KEY_RM | raw::REDISMODULE_CMD_KEY_DELETE,
        };
        u64::from(f)
    }

    /// The first key's position and the last key (0: only the first; -1: the last argument),
    /// or `None` when the command reads no key. `first_arg` is the position of the command's
    /// first argument: 2 for a subcommand (`IPCHECK GET <ip>`), 1 for a top-level command.
    fn key_range(self, first_arg: c_int) -> Option<(c_int, c_int)> {
        match self {
            KeyAccess::None => None,
            KeyAccess::ListsRead => Some((first_arg + 1, -1)),
            _ => Some((first_arg, 0)),
        }
    }
}

/// One subcommand's registration.
struct Subcommand {
    name: &'static CStr,
    handler: raw::RedisModuleCmdFunc,
    flags: &'static CStr,
    arity: c_int,
    key: KeyAccess,
    /// ACL categories, set where Redis supports it for module commands (7.2+).
    categories: &'static CStr,
    summary: &'static CStr,
    /// Arguments after the subcommand name, for `COMMAND DOCS` and redis-cli hints (`SET`'s
    /// options follow from the protocol table, see [`set_option_names`]).
    args: &'static [ArgDoc<'static>],
}

/// One documented argument.
#[derive(Clone, Copy)]
struct ArgDoc<'a> {
    name: &'a CStr,
    kind: ArgKind<'a>,
    optional: bool,
}

/// What an argument is, in `COMMAND DOCS` terms.
#[derive(Clone, Copy)]
enum ArgKind<'a> {
    /// The address, which is the declared key argument.
    Key,
    /// The address where no key is declared (`KEY`), or another string.
    Text,
    /// A plain integer.
    Integer,
    /// `allow`, `block` or `challenge`.
    Verdict,
    /// `<TOKEN> <value>` with a string or integer value.
    Option { token: &'a CStr, integer: bool },
    /// A bare flag word.
    Flag(&'a CStr),
    /// One or more keys (the lists of `NETMATCH`).
    KeyMulti,
    /// One or more strings (the networks of `NETADD`, `NETDEL`).
    TextMulti,
}

const IP_KEY: ArgDoc<'static> = ArgDoc {
    name: c"ip",
    kind: ArgKind::Key,
    optional: false,
};

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
    lget_cmd => crate::subcommands::lget::run,
    lget_previous_cmd => crate::subcommands::lget::run_previous,
    lset_cmd => crate::subcommands::lset::run,
    set_cmd => crate::subcommands::set::run,
    del_cmd => crate::subcommands::del::run,
    key_cmd => crate::subcommands::key::run,
    stats_cmd => crate::subcommands::stats::run,
    help_cmd => crate::subcommands::help::run,
    netadd_cmd => crate::subcommands::netadd::run,
    netdel_cmd => crate::subcommands::netdel::run,
    netmatch_cmd => crate::subcommands::netmatch::run,
    netinfo_cmd => crate::subcommands::netinfo::run,
    netdump_cmd => crate::subcommands::netdump::run,
}

const LIST_KEY: ArgDoc<'static> = ArgDoc {
    name: c"list",
    kind: ArgKind::Key,
    optional: false,
};

const NETWORKS: ArgDoc<'static> = ArgDoc {
    name: c"network",
    kind: ArgKind::TextMulti,
    optional: false,
};

const SUBCOMMANDS: [Subcommand; 12] = [
    Subcommand {
        name: c"get",
        args: &[IP_KEY],
        categories: c"read fast",
        handler: Some(get_cmd),
        flags: c"readonly fast",
        arity: 3,
        key: KeyAccess::Read,
        summary: c"Returns the cached verdict for an address.",
    },
    Subcommand {
        name: c"lget",
        args: &[ArgDoc {
            name: c"key",
            kind: ArgKind::Key,
            optional: false,
        }],
        categories: c"read fast",
        handler: Some(lget_previous_cmd),
        flags: c"readonly fast",
        arity: 3,
        key: KeyAccess::Read,
        summary: c"The previous release's lean read: [stored value, milliseconds left]. Use IPCHECK.LGET.",
    },
    Subcommand {
        name: c"set",
        args: &[
            IP_KEY,
            ArgDoc {
                name: c"verdict",
                kind: ArgKind::Verdict,
                optional: false,
            },
        ],
        categories: c"write",
        handler: Some(set_cmd),
        flags: c"write deny-oom",
        arity: -4,
        key: KeyAccess::Write,
        summary: c"Caches a verdict for an address, with a TTL.",
    },
    Subcommand {
        name: c"del",
        args: &[IP_KEY],
        categories: c"write",
        handler: Some(del_cmd),
        flags: c"write deny-oom",
        arity: 3,
        key: KeyAccess::Delete,
        summary: c"Deletes the cached verdict for an address.",
    },
    Subcommand {
        name: c"key",
        args: &[ArgDoc {
            name: c"ip",
            kind: ArgKind::Text,
            optional: false,
        }],
        categories: c"fast",
        handler: Some(key_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 3,
        key: KeyAccess::None,
        summary: c"Returns the Redis key an address maps to.",
    },
    Subcommand {
        name: c"stats",
        args: &[],
        categories: c"fast",
        handler: Some(stats_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 2,
        key: KeyAccess::None,
        summary: c"Returns the module's counters since load.",
    },
    Subcommand {
        name: c"help",
        args: &[],
        categories: c"fast",
        handler: Some(help_cmd),
        flags: c"readonly fast allow-loading allow-stale",
        arity: 2,
        key: KeyAccess::None,
        summary: c"Shows helpful text about the different subcommands.",
    },
    Subcommand {
        name: c"netadd",
        args: &[
            LIST_KEY,
            NETWORKS,
            ArgDoc {
                name: c"reasons",
                kind: ArgKind::Option {
                    token: c"VALUE",
                    integer: false,
                },
                optional: true,
            },
            ArgDoc {
                name: c"unix-time-milliseconds",
                kind: ArgKind::Option {
                    token: c"PXAT",
                    integer: true,
                },
                optional: true,
            },
        ],
        categories: c"write",
        handler: Some(netadd_cmd),
        flags: c"write deny-oom",
        arity: -4,
        key: KeyAccess::ListWrite,
        summary: c"Adds networks (each with an optional VALUE and PXAT) to a network list.",
    },
    Subcommand {
        name: c"netdel",
        args: &[LIST_KEY, NETWORKS],
        categories: c"write",
        handler: Some(netdel_cmd),
        flags: c"write",
        arity: -4,
        key: KeyAccess::ListWrite,
        summary: c"Removes networks from a network list.",
    },
    Subcommand {
        name: c"netmatch",
        args: &[
            ArgDoc {
                name: c"ip",
                kind: ArgKind::Text,
                optional: false,
            },
            ArgDoc {
                name: c"list",
                kind: ArgKind::KeyMulti,
                optional: false,
            },
        ],
        categories: c"read",
        handler: Some(netmatch_cmd),
        flags: c"readonly",
        arity: -4,
        key: KeyAccess::ListsRead,
        summary: c"Returns the longest network covering an address across network lists.",
    },
    Subcommand {
        name: c"netinfo",
        args: &[LIST_KEY],
        categories: c"read",
        handler: Some(netinfo_cmd),
        flags: c"readonly fast",
        arity: 3,
        key: KeyAccess::ListRead,
        summary: c"Returns a network list's IPv4 and IPv6 counts and memory.",
    },
    Subcommand {
        name: c"netdump",
        args: &[
            LIST_KEY,
            ArgDoc {
                name: c"cursor",
                kind: ArgKind::Text,
                optional: false,
            },
            ArgDoc {
                name: c"count",
                kind: ArgKind::Option {
                    token: c"COUNT",
                    integer: true,
                },
                optional: true,
            },
        ],
        categories: c"read",
        handler: Some(netdump_cmd),
        flags: c"readonly",
        arity: -4,
        key: KeyAccess::ListRead,
        summary: c"Walks a network list with a cursor.",
    },
];

/// The lean read as a top-level command (`ipcheck_core::protocol::LEAN_READ`, a test holds the
/// two names together), described like a subcommand; its arguments start at position 1.
const LEAN_READ: Subcommand = Subcommand {
    name: c"ipcheck.lget",
    args: &[ArgDoc {
        name: c"key",
        kind: ArgKind::Key,
        optional: false,
    }],
    categories: c"read fast",
    handler: Some(lget_cmd),
    flags: c"readonly fast",
    arity: 2,
    key: KeyAccess::Read,
    summary: c"Returns an entry's stored value and milliseconds left (the lean read).",
};

/// The lean write as a top-level command (`ipcheck_core::protocol::LEAN_WRITE`), like
/// [`LEAN_READ`].
const LEAN_WRITE: Subcommand = Subcommand {
    name: c"ipcheck.lset",
    args: &[
        ArgDoc {
            name: c"key",
            kind: ArgKind::Key,
            optional: false,
        },
        ArgDoc {
            name: c"value",
            kind: ArgKind::Text,
            optional: false,
        },
        ArgDoc {
            name: c"seconds",
            kind: ArgKind::Integer,
            optional: false,
        },
    ],
    categories: c"write",
    handler: Some(lset_cmd),
    flags: c"write deny-oom",
    arity: 4,
    key: KeyAccess::Write,
    summary: c"Stores an entry's encoded value under its key (the lean write).",
};

/// Registers the `IPCHECK` container, all its subcommands and the top-level `IPCHECK.LGET` and
/// `IPCHECK.LSET`.
pub fn register(ctx: Ctx) -> Result<(), String> {
    // SAFETY: load ctx; names are NUL-terminated and copied by Redis.
    let parent = unsafe { register_container(ctx)? };
    for sub in &SUBCOMMANDS {
        // SAFETY: load ctx; `parent` comes from GetCommand.
        unsafe { register_row(ctx, sub, Place::Under(parent))? };
    }
    for top in [&LEAN_READ, &LEAN_WRITE] {
        // SAFETY: load ctx.
        unsafe { register_row(ctx, top, Place::Top)? };
    }
    Ok(())
}

/// Where a row is registered.
#[derive(Clone, Copy)]
enum Place {
    /// As a command of its own (arguments from position 1).
    Top,
    /// As a subcommand of this container (arguments from position 2).
    Under(*mut raw::RedisModuleCommand),
}

/// The first and last key positions `CreateCommand` takes (0, 0: no key).
fn key_positions(access: KeyAccess, first_arg: c_int) -> (c_int, c_int) {
    match access.key_range(first_arg) {
        None => (0, 0),
        Some((pos, 0)) => (pos, pos),
        Some((pos, last)) => (pos, last),
    }
}

/// Creates the `IPCHECK` container (no handler of its own) and returns it.
///
/// # Safety
/// `ctx` is the load context.
unsafe fn register_container(ctx: Ctx) -> Result<*mut raw::RedisModuleCommand, String> {
    // SAFETY: per the function contract; names are NUL-terminated and copied by Redis.
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
        set_info(
            parent,
            -2,
            c"The ipcheck verdict cache.",
            ptr::null_mut(),
            ptr::null_mut(),
        )?;
        Ok(parent)
    }
}

/// Creates the command of `row` at `place`, then gives it its `COMMAND INFO`/`DOCS` entry and
/// (where Redis can) its ACL categories.
///
/// # Safety
/// `ctx` is the load context; a `Place::Under` container comes from GetCommand.
unsafe fn register_row(ctx: Ctx, row: &Subcommand, place: Place) -> Result<(), String> {
    let name = row.name.to_string_lossy();
    let (first_arg, full) = match place {
        Place::Top => (1, format!("{name}\0")),
        Place::Under(_) => (2, format!("ipcheck|{name}\0")),
    };
    let shown = full.trim_end_matches('\0');
    let (first, last) = key_positions(row.key, first_arg);
    // SAFETY: per the function contract; names and flags are NUL-terminated and copied by Redis.
    unsafe {
        let created = match place {
            Place::Top => api!(RedisModule_CreateCommand)(
                ctx.as_ptr(),
                row.name.as_ptr(),
                row.handler,
                row.flags.as_ptr(),
                first,
                last,
                i32::from(first != 0),
            ),
            Place::Under(parent) => api!(RedisModule_CreateSubcommand)(
                parent,
                row.name.as_ptr(),
                row.handler,
                row.flags.as_ptr(),
                first,
                last,
                i32::from(first != 0),
            ),
        };
        if created != raw::REDISMODULE_OK as c_int {
            return Err(format!("cannot create command {shown} (name taken?)"));
        }
        let cmd = api!(RedisModule_GetCommand)(ctx.as_ptr(), full.as_ptr().cast());
        if cmd.is_null() {
            return Err(format!("cannot look up command {shown}"));
        }
        let mut specs = key_specs(row.key, first_arg);
        let specs_ptr = match row.key.key_range(first_arg) {
            None => ptr::null_mut(),
            _ => specs.as_mut_ptr(),
        };
        let mut verdicts = verdict_tokens();
        let option_names = set_option_names();
        let mut docs = row.args.to_vec();
        if row.name == SET {
            docs.extend(set_option_docs(&option_names));
        }
        let mut args = arg_docs(&docs, verdicts.as_mut_ptr());
        set_info(cmd, row.arity, row.summary, specs_ptr, args.as_mut_ptr())?;
        set_categories(ctx, cmd, shown, row.categories);
    }
    Ok(())
}

/// The subcommand whose options come from `ipcheck_core::protocol::SET_OPTIONS`.
const SET: &CStr = c"set";

/// Each `SET` option's value name and token as C strings, in table order.
fn set_option_names() -> Vec<(CString, CString)> {
    SET_OPTIONS
        .iter()
        .map(|row| {
            let value = row.value.unwrap_or(row.name).to_ascii_lowercase();
            // Table constants: never hold a NUL.
            (
                CString::new(value).unwrap_or_default(),
                CString::new(row.name).unwrap_or_default(),
            )
        })
        .collect()
}

/// `SET`'s options as documented arguments, each optional, from the protocol table.
fn set_option_docs(names: &[(CString, CString)]) -> impl Iterator<Item = ArgDoc<'_>> {
    SET_OPTIONS
        .iter()
        .zip(names)
        .map(|(row, (value, token))| ArgDoc {
            name: value,
            kind: match row.value {
                Some(_) => ArgKind::Option {
                    token,
                    integer: row.integer,
                },
                None => ArgKind::Flag(token),
            },
            optional: true,
        })
}

/// Puts a subcommand in its ACL categories (`+@read` ...) where Redis can (7.2+); Redis 7.0 has
/// no API for it, so there only explicit rules such as `+ipcheck|get` apply.
///
/// # Safety
/// `cmd` comes from `GetCommand`.
unsafe fn set_categories(
    ctx: Ctx,
    cmd: *mut raw::RedisModuleCommand,
    shown: &str,
    categories: &CStr,
) {
    // SAFETY: copying a pointer from the table RedisModule_Init filled in.
    let Some(set) = (unsafe { raw::RedisModule_SetCommandACLCategories }) else {
        return;
    };
    // SAFETY: per the function contract; the category string is NUL-terminated.
    if unsafe { set(cmd, categories.as_ptr()) } != raw::REDISMODULE_OK as c_int {
        crate::log_warning(
            Some(ctx),
            &format!(
                "could not put {shown} in ACL categories '{}'",
                categories.to_string_lossy()
            ),
        );
    }
}

/// The key spec of `access` (from its first key position to its last key, see
/// [`KeyAccess::key_range`]) followed by the zeroed terminator Redis expects.
fn key_specs(access: KeyAccess, first_arg: c_int) -> [raw::RedisModuleCommandKeySpec; 2] {
    // SAFETY: an all-zero key spec is the documented terminator (BS_INVALID, null notes).
    let mut specs: [raw::RedisModuleCommandKeySpec; 2] = unsafe { std::mem::zeroed() };
    let (pos, lastkey) = access.key_range(first_arg).unwrap_or((first_arg, 0));
    specs[0].flags = access.spec_flags();
    specs[0].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    specs[0].bs.index.pos = pos;
    specs[0].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
    specs[0].fk.range = raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
        lastkey,
        keystep: 1,
        limit: 0,
    };
    specs
}

/// The three verdict words as pure tokens, plus the zeroed terminator.
fn verdict_tokens() -> [raw::RedisModuleCommandArg; 4] {
    // SAFETY: all-zero is a valid (terminating) argument entry.
    let mut out: [raw::RedisModuleCommandArg; 4] = unsafe { std::mem::zeroed() };
    for (slot, word) in out.iter_mut().zip([c"allow", c"block", c"challenge"]) {
        slot.name = word.as_ptr();
        slot.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN;
        slot.token = word.as_ptr();
        slot.key_spec_index = -1;
    }
    out
}

/// `COMMAND DOCS` entries for `docs`, plus the zeroed terminator. `verdicts` must outlive the
/// returned array's use.
fn arg_docs(
    docs: &[ArgDoc],
    verdicts: *mut raw::RedisModuleCommandArg,
) -> Vec<raw::RedisModuleCommandArg> {
    let mut out = Vec::with_capacity(docs.len() + 1);
    for doc in docs {
        // SAFETY: all-zero is a valid starting point; every field Redis reads is set below.
        let mut a: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
        a.name = doc.name.as_ptr();
        a.key_spec_index = -1;
        if doc.optional {
            a.flags = raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int;
        }
        match doc.kind {
            ArgKind::Key => {
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY;
                a.key_spec_index = 0;
            }
            ArgKind::Text => a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
            ArgKind::Integer => {
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER;
            }
            ArgKind::KeyMulti => {
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY;
                a.key_spec_index = 0;
                a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as c_int;
            }
            ArgKind::TextMulti => {
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING;
                a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as c_int;
            }
            ArgKind::Verdict => {
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF;
                a.subargs = verdicts;
            }
            ArgKind::Option { token, integer } => {
                a.token = token.as_ptr();
                a.type_ = if integer {
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER
                } else {
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING
                };
            }
            ArgKind::Flag(token) => {
                a.token = token.as_ptr();
                a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN;
            }
        }
        out.push(a);
    }
    // SAFETY: the all-zero terminator.
    out.push(unsafe { std::mem::zeroed() });
    out
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
    args: *mut raw::RedisModuleCommandArg,
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
        args,
    };
    // SAFETY: per the function contract; Redis copies everything it keeps.
    if unsafe { api!(RedisModule_SetCommandInfo)(cmd, &info) } != raw::REDISMODULE_OK as c_int {
        return Err("RedisModule_SetCommandInfo refused the command info".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lean_read_is_registered_under_core_s_name() {
        assert_eq!(
            LEAN_READ.name.to_str().map(str::to_ascii_uppercase),
            Ok(ipcheck_core::LEAN_READ.to_owned())
        );
        assert_eq!(key_positions(LEAN_READ.key, 1), (1, 1));
        assert_eq!(
            LEAN_WRITE.name.to_str().map(str::to_ascii_uppercase),
            Ok(ipcheck_core::LEAN_WRITE.to_owned())
        );
        assert_eq!(key_positions(LEAN_WRITE.key, 1), (1, 1));
        assert_eq!(key_positions(KeyAccess::ListsRead, 2), (3, -1));
    }
}
