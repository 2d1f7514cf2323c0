//! Bench only: `FLOOR.GET`, `FLOOR.LGET` and `FLOOR.SET`, the least any Redis module can do and
//! still honour the `IPCHECK GET`/`LGET`/`SET` contracts, so `bench/redis-module.sh` can show
//! what Redis's module API costs by itself, apart from ipcheck's own work.
//!
//! - `FLOOR.GET <key>`: open the key, read the string and its TTL, reply with a 10-element array
//!   (`verdict <value> reason <value> source <value> ttl <s> key <key>`; the full `IPCHECK GET`
//!   reply has grown since, see bench/README.md). No address parsing, no command filter, no
//!   decoding: the stored value is echoed three times.
//! - `FLOOR.LGET <key>`: the lean read's contract (`IPCHECK.LGET`): one bulk string, the key's
//!   remaining milliseconds, a space and the stored value; nil on a miss.
//! - `FLOOR LGET <key>`: `FLOOR.LGET` as a subcommand of a container command: what Redis's
//!   subcommand dispatch would add (one more argument to parse and allocate, a second
//!   command-table lookup) apart from anything a module does; the reason the lean read is a
//!   command of its own.
//! - `FLOOR SET <key> <verdict> REASON <reasons> EX <seconds>`: `FLOOR.SET`'s work (storing a
//!   fixed value) in the argument form of `IPCHECK SET`, a subcommand with eight arguments: what
//!   that form costs Redis by itself.
//! - `FLOOR.SET <key> <value> <seconds>`: open the key for writing, read the old value (the
//!   contract's manual-pin check needs it), write the value **in place** as `IPCHECK SET` does
//!   (truncate, then copy through the string's DMA; `RedisModule_StringSet` would delete and
//!   re-add the key), set an absolute expiry, replicate as `SET <key> <value> PXAT <ms>` (the
//!   contract's replication form) and reply `OK`. The arguments are trusted: no validation, no
//!   encoding.
//!
//! Nothing here may ever be loaded into a server that matters: it trusts its arguments. It still
//! never panics: every pointer is checked and nothing unwraps.

use std::os::raw::{c_char, c_int, c_longlong};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};
use redis_module::{Context, RedisString, Status};

const OK: c_int = raw::REDISMODULE_OK as c_int;
const ERR: c_int = raw::REDISMODULE_ERR as c_int;
const READ: c_int = raw::REDISMODULE_READ as c_int;
const WRITE: c_int = raw::REDISMODULE_WRITE as c_int;

/// The bytes of a Redis string, or empty if Redis has no API to read it (it always has).
///
/// # Safety
/// `s` must be a live Redis string that outlives the returned slice.
unsafe fn bytes<'a>(s: *mut RedisModuleString) -> &'a [u8] {
    let Some(ptr_len) = raw::RedisModule_StringPtrLen else {
        return &[];
    };
    let mut len = 0usize;
    let p = ptr_len(s, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p.cast::<u8>(), len)
}

/// Replies with a byte string.
///
/// # Safety
/// `ctx` must be the live command context.
unsafe fn reply_bulk(ctx: *mut RedisModuleCtx, b: &[u8]) {
    if let Some(f) = raw::RedisModule_ReplyWithStringBuffer {
        f(ctx, b.as_ptr().cast::<c_char>(), b.len());
    }
}

/// The string an open key holds, or `None` when it holds no string (empty or another type).
///
/// # Safety
/// `key` must be an open key (or null) that outlives the returned slice and is not modified
/// meanwhile.
unsafe fn string_value<'a>(key: *mut raw::RedisModuleKey) -> Option<&'a [u8]> {
    let (Some(key_type), Some(dma)) = (raw::RedisModule_KeyType, raw::RedisModule_StringDMA) else {
        return None;
    };
    if key.is_null() || key_type(key) != raw::REDISMODULE_KEYTYPE_STRING as c_int {
        return None;
    }
    let mut len = 0usize;
    let p = dma(key, &mut len, READ);
    if p.is_null() {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
}

/// The read both floor reads share: open the last argument (`argv[argc - 1]`, with `argc` the
/// command's arity), and on a string call `reply` with the value, its milliseconds left and the
/// key name; nil on anything else.
///
/// # Safety
/// The arguments of a live command call.
unsafe fn read_and_reply(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
    arity: c_int,
    reply: unsafe fn(*mut RedisModuleCtx, &[u8], i64, *mut RedisModuleString),
) -> c_int {
    let (Some(open), Some(close), Some(null)) = (
        raw::RedisModule_OpenKey,
        raw::RedisModule_CloseKey,
        raw::RedisModule_ReplyWithNull,
    ) else {
        return ERR;
    };
    if argc != arity {
        // An error reply, not just ERR: a module command that returns without replying leaves
        // its client waiting for ever.
        return match raw::RedisModule_WrongArity {
            Some(wrong_arity) => wrong_arity(ctx),
            None => ERR,
        };
    }
    let name = *argv.add(arity as usize - 1);
    let key = open(ctx, name, READ);
    let Some(value) = string_value(key) else {
        close(key);
        null(ctx);
        return OK;
    };
    reply(ctx, value, ttl_ms(key), name);
    close(key);
    OK
}

/// Milliseconds left by the coarse clock, as `IPCHECK GET` and `IPCHECK.LGET` read them; -1
/// without expiry.
///
/// # Safety
/// `key` must be an open key.
unsafe fn ttl_ms(key: *mut raw::RedisModuleKey) -> i64 {
    let at = raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(key));
    if at < 0 {
        return -1;
    }
    at.saturating_sub(now_ms()).max(0)
}

/// The wall clock to within a kernel tick, as ipcheck reads it (redis-module/src/clock.rs).
// `time_t` is `i64` here, but not on every target.
#[allow(clippy::useless_conversion)]
fn now_ms() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } != 0 {
        return 0;
    }
    i64::from(now.tv_sec) * 1000 + i64::from(now.tv_nsec) / 1_000_000
}

/// Replies with an array header of `n` elements.
///
/// # Safety
/// `ctx` must be the live command context.
unsafe fn reply_array(ctx: *mut RedisModuleCtx, n: i64) {
    if let Some(f) = raw::RedisModule_ReplyWithArray {
        f(ctx, n);
    }
}

/// Replies with an integer.
///
/// # Safety
/// `ctx` must be the live command context.
unsafe fn reply_int(ctx: *mut RedisModuleCtx, n: i64) {
    if let Some(f) = raw::RedisModule_ReplyWithLongLong {
        f(ctx, n as c_longlong);
    }
}

/// `FLOOR.GET <key>`.
unsafe extern "C" fn floor_get(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    unsafe fn reply(
        ctx: *mut RedisModuleCtx,
        value: &[u8],
        ttl_ms: i64,
        name: *mut RedisModuleString,
    ) {
        reply_array(ctx, 10);
        reply_bulk(ctx, b"verdict");
        reply_bulk(ctx, value);
        reply_bulk(ctx, b"reason");
        reply_bulk(ctx, value);
        reply_bulk(ctx, b"source");
        reply_bulk(ctx, value);
        reply_bulk(ctx, b"ttl");
        reply_int(ctx, (ttl_ms + 500) / 1000);
        reply_bulk(ctx, b"key");
        reply_bulk(ctx, bytes(name));
    }
    read_and_reply(ctx, argv, argc, 2, reply)
}

/// The lean read's reply: `<milliseconds left> <value>` in one bulk string.
///
/// # Safety
/// `ctx` must be the live command context.
unsafe fn lean_reply(
    ctx: *mut RedisModuleCtx,
    value: &[u8],
    ttl_ms: i64,
    _: *mut RedisModuleString,
) {
    let mut buf = [0u8; 128];
    let mut digits = itoa::Buffer::new();
    let ms = digits.format(ttl_ms).as_bytes();
    let n = ms.len() + 1 + value.len();
    let Some(out) = buf.get_mut(..n) else {
        reply_bulk(ctx, value);
        return;
    };
    out[..ms.len()].copy_from_slice(ms);
    out[ms.len()] = b' ';
    out[ms.len() + 1..].copy_from_slice(value);
    reply_bulk(ctx, out);
}

/// `FLOOR LGET <key>`.
unsafe extern "C" fn floor_sub_lget(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    read_and_reply(ctx, argv, argc, 3, lean_reply)
}

/// `FLOOR.LGET <key>`.
unsafe extern "C" fn floor_lget(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    read_and_reply(ctx, argv, argc, 2, lean_reply)
}

/// `FLOOR.SET <key> <value> <seconds>`.
unsafe extern "C" fn floor_set(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    if argc != 4 {
        return ERR;
    }
    let (name, value) = (*argv.add(1), *argv.add(2));
    let secs: i64 = std::str::from_utf8(bytes(*argv.add(3)))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(86_400);
    store(ctx, name, Value::Argument(value), secs)
}

/// `FLOOR SET <key> <verdict> REASON <reasons> EX <seconds>`: `FLOOR.SET`'s work in the argument
/// form of `IPCHECK SET` (a subcommand, eight arguments), to show what that form costs Redis
/// apart from anything a module does. It reads none of its arguments but the key: it stores
/// [`FORM_VALUE`] for a day, the value `IPCHECK SET <ip> block REASON vpn,tor` stores.
unsafe extern "C" fn floor_sub_set(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    if argc < 3 {
        return ERR;
    }
    store(ctx, *argv.add(2), Value::Bytes(FORM_VALUE), 86_400)
}

/// What `FLOOR SET` stores.
const FORM_VALUE: &[u8] = b"321;0";

/// The value a floor write stores.
enum Value {
    /// An argument, replicated as it is (retained, not copied).
    Argument(*mut RedisModuleString),
    /// Bytes, replicated as a buffer (copied), as `IPCHECK SET` replicates what it encoded.
    Bytes(&'static [u8]),
}

/// Opens `name` for writing, reads the old value, writes `value` in place, sets the expiry,
/// replicates `SET <name> <value> PXAT <ms>` and replies `OK`.
///
/// # Safety
/// The context and key name of a live command call.
unsafe fn store(
    ctx: *mut RedisModuleCtx,
    name: *mut RedisModuleString,
    value: Value,
    secs: i64,
) -> c_int {
    let (
        Some(open),
        Some(close),
        Some(truncate),
        Some(dma),
        Some(set_abs_expire),
        Some(replicate),
        Some(simple),
    ) = (
        raw::RedisModule_OpenKey,
        raw::RedisModule_CloseKey,
        raw::RedisModule_StringTruncate,
        raw::RedisModule_StringDMA,
        raw::RedisModule_SetAbsExpire,
        raw::RedisModule_Replicate,
        raw::RedisModule_ReplyWithSimpleString,
    )
    else {
        return ERR;
    };
    let key = open(ctx, name, READ | WRITE);
    if key.is_null() {
        return ERR;
    }
    // The manual-pin check reads the old value before writing.
    let _old = string_value(key);
    let expire_at = now_ms() + secs * 1000;
    let bytes_in = match value {
        Value::Argument(s) => bytes(s),
        Value::Bytes(b) => b,
    };
    if truncate(key, bytes_in.len()) != OK {
        close(key);
        return ERR;
    }
    let mut len = 0usize;
    let dst = dma(key, &mut len, WRITE);
    if dst.is_null() || len != bytes_in.len() {
        close(key);
        return ERR;
    }
    std::ptr::copy_nonoverlapping(bytes_in.as_ptr(), dst.cast::<u8>(), len);
    set_abs_expire(key, expire_at);
    close(key);
    match value {
        Value::Argument(s) => replicate(
            ctx,
            c"SET".as_ptr(),
            c"sscl".as_ptr(),
            name,
            s,
            c"PXAT".as_ptr(),
            expire_at as c_longlong,
        ),
        Value::Bytes(b) => replicate(
            ctx,
            c"SET".as_ptr(),
            c"sbcl".as_ptr(),
            name,
            b.as_ptr().cast::<c_char>(),
            b.len(),
            c"PXAT".as_ptr(),
            expire_at as c_longlong,
        ),
    };
    simple(ctx, c"OK".as_ptr());
    OK
}

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let Some(create) = (unsafe { raw::RedisModule_CreateCommand }) else {
        return Status::Err;
    };
    let commands: [(&std::ffi::CStr, raw::RedisModuleCmdFunc, &std::ffi::CStr); 3] = [
        (c"floor.get", Some(floor_get), c"readonly fast"),
        (c"floor.lget", Some(floor_lget), c"readonly fast"),
        (c"floor.set", Some(floor_set), c"write deny-oom"),
    ];
    for (name, handler, flags) in commands {
        // SAFETY: load context; static names and flags; plain function handlers.
        let r = unsafe { create(ctx.ctx, name.as_ptr(), handler, flags.as_ptr(), 1, 1, 1) };
        if r != OK {
            return Status::Err;
        }
    }
    // SAFETY: load context; static names and flags; a plain function handler.
    if unsafe { register_container(ctx.ctx) }.is_none() {
        return Status::Err;
    }
    Status::Ok
}

/// Registers the container `FLOOR` with its subcommands `LGET` and `SET`, as ipcheck registers
/// its own; `None` when Redis refuses.
///
/// # Safety
/// `ctx` is the load context.
unsafe fn register_container(ctx: *mut RedisModuleCtx) -> Option<()> {
    let create = raw::RedisModule_CreateCommand?;
    let get = raw::RedisModule_GetCommand?;
    let create_sub = raw::RedisModule_CreateSubcommand?;
    if create(ctx, c"floor".as_ptr(), None, c"".as_ptr(), 0, 0, 0) != OK {
        return None;
    }
    let parent = get(ctx, c"floor".as_ptr());
    if parent.is_null() {
        return None;
    }
    let subcommands: [(&std::ffi::CStr, raw::RedisModuleCmdFunc, &std::ffi::CStr); 2] = [
        (c"lget", Some(floor_sub_lget), c"readonly fast"),
        (c"set", Some(floor_sub_set), c"write deny-oom"),
    ];
    for (name, handler, flags) in subcommands {
        if create_sub(parent, name.as_ptr(), handler, flags.as_ptr(), 2, 2, 1) != OK {
            return None;
        }
    }
    Some(())
}

redis_module::redis_module! {
    name: "ipcheckfloor",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [],
}
