//! The one entry point every `IPCHECK` subcommand goes through: a panic becomes an error reply.
//!
//! A panic unwinding out of a module's `extern "C"` handler aborts Redis and loses every key in
//! memory. The workspace profiles keep `panic = "unwind"`, so `catch_unwind` here turns even a
//! bug into `-ERR internal error`, counted and logged (rate-limited) by [`crate::bugs`], while
//! RAII guards in [`crate::ffi`] close keys and free strings on the way out.
//!
//! Handlers compute everything that can fail before they start replying, so an error reply never
//! lands in the middle of a half-written array.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;

use crate::bugs::{self, Site};
use crate::error::{reply_line, CommandError};
use crate::ffi::{string_bytes, Ctx, RString};
use crate::stats;

/// A subcommand implementation: arguments (`argv[0]` is `IPCHECK`) in, reply sent or error out.
/// Generic over the call's lifetime `'a`, so a handler cannot keep its context or arguments.
pub type Handler = for<'a> fn(Ctx<'a>, &Args<'a>) -> Result<(), CommandError>;

/// The command's arguments.
pub struct Args<'a> {
    argv: &'a [*mut raw::RedisModuleString],
}

impl<'a> Args<'a> {
    /// How many arguments, including `IPCHECK` and the subcommand name.
    pub fn len(&self) -> usize {
        self.argv.len()
    }

    /// Whether there are none (never, for a real call).
    pub fn is_empty(&self) -> bool {
        self.argv.is_empty()
    }

    /// Argument `i` as a Redis string used in place, if present.
    pub fn string(&self, i: usize) -> Option<RString<'a>> {
        // SAFETY: an argv string of the current call; `'a` ends before the call does.
        self.argv.get(i).map(|s| unsafe { RString::argument(*s) })
    }

    /// Argument `i` as bytes; empty when out of range.
    pub fn get(&self, i: usize) -> &'a [u8] {
        // SAFETY: argv strings live for the whole command call, as long as `self`.
        self.argv
            .get(i)
            .map_or(&[], |s| unsafe { string_bytes(*s) })
    }
}

/// Runs `handler` for a raw call, replying with an error (and counting it) on failure or panic.
///
/// # Safety
/// The arguments are exactly what Redis passed to a command handler.
pub unsafe fn run(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: Handler,
) -> c_int {
    // SAFETY: Redis's context for this call; `ctx` and `args` are dropped before `run` returns.
    let ctx = unsafe { Ctx::new(ctx) };
    let argv: &[*mut raw::RedisModuleString] = match usize::try_from(argc) {
        // SAFETY: Redis passes argc valid pointers that live for the whole call.
        Ok(n) if !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
        _ => &[],
    };
    let args = Args { argv };
    match catch_unwind(AssertUnwindSafe(|| handler(ctx, &args))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            stats::ERRORS.incr();
            ctx.reply_error(&e.to_reply());
        }
        Err(payload) => {
            stats::ERRORS.incr();
            let what = bugs::panic_message(payload.as_ref());
            bugs::report(Site::Handler, Some(ctx), &what);
            ctx.reply_error(&reply_line(
                "ERR",
                &format!("internal error in IPCHECK: {what}"),
            ));
        }
    }
    raw::REDISMODULE_OK as c_int
}
