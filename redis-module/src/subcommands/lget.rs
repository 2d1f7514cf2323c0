//! `IPCHECK.LGET <key>`: the lean read, for the service's hot path.
//!
//! A command of its own, not a subcommand of `IPCHECK`: Redis's subcommand dispatch (one more
//! argument object, a second case-insensitive command-table lookup) costs a read this small more
//! than all of ipcheck's own work in it (docs/lean-read.md, bench/README.md).
//!
//! `IPCHECK LGET <key>` is the previous release's form of the same read, a subcommand answering
//! the 2-element array `[<stored value>, <milliseconds left>]`. It stays so that ACL rules naming
//! `+ipcheck|lget` keep loading (Redis refuses a rule for a subcommand that does not exist, and an
//! ACL file it refuses stops it from starting) and that services of that release keep reading.
//!
//! Reply: nil on a miss; on a hit one bulk string, `<milliseconds left> <stored value>`
//! (`ipcheck_core::lean_reply`), the milliseconds left as `PTTL` counts them but by the module's
//! clock (`crate::clock`, the one `IPCHECK GET` and every write use), -1 for a key without
//! expiry. The reader decodes it with `ipcheck_core::decode_lean_reply`, the functions
//! `IPCHECK GET` decodes with, so a hit means exactly what the matching `GET` reply says.
//! Read-only: served by replicas and from `EVAL_RO`.
//!
//! The argument is the key itself, as `IPCHECK KEY` names it (`ipcheck:192.0.2.1`,
//! `ipcheck:{192.0.2.1}` in cluster mode): it is the declared key, so Redis checks ACL key
//! patterns and cluster slots on it before the module runs, the command filter leaves the call
//! alone, and the handler does no address work at all: any argument that starts with the key
//! prefix (which no address text can) is read as given, and anything else is refused with a
//! pointer to `IPCHECK KEY`. A key that is no entry's (not canonical, or a refresh lock) reads
//! as whatever it holds; the reader's decoding says when that is not an entry, and Redis's ACL,
//! not the module, decides who may read which key.

use ipcheck_core::{lean_reply, NO_EXPIRY_MS};

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ};
use crate::panic_guard::Args;
use crate::settings;
use crate::stats;

/// Handler for `IPCHECK.LGET <key>`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    read(ctx, args, 1, |ctx, value, ms| {
        ctx.reply_bulk(lean_reply(ms, value).as_bytes());
    })
}

/// Handler for `IPCHECK|LGET`: `IPCHECK LGET <key>`, the previous release's form.
pub fn run_previous(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    read(ctx, args, 2, |ctx, value, ms| {
        ctx.reply_array(2);
        ctx.reply_bulk(value);
        ctx.reply_int(ms);
    })
}

/// The lean read of the key at argument `pos` (the last), answered by `reply` with the stored
/// value and the milliseconds left.
fn read(
    ctx: Ctx,
    args: &Args,
    pos: usize,
    reply: impl FnOnce(Ctx, &[u8], i64),
) -> Result<(), CommandError> {
    if args.len() != pos + 1 {
        return Err(if pos == 1 {
            CommandError::TopArity("ipcheck.lget")
        } else {
            CommandError::Arity("lget")
        });
    }
    let prefix = settings::key_prefix().as_bytes();
    let arg = args.get(pos);
    let name = match args.string(pos) {
        Some(name) if arg.starts_with(prefix) => name,
        _ => {
            return Err(CommandError::LeanKey {
                given: String::from_utf8_lossy(arg).into_owned(),
                prefix: String::from_utf8_lossy(prefix).into_owned(),
            })
        }
    };
    let key = ctx.open_key(&name, READ);
    // Opened for reading, a missing key opens as nothing, and an open key that holds no string
    // reads as `None`: no type check of its own.
    if key.as_ptr().is_null() {
        stats::MISSES.incr();
        ctx.reply_null();
        return Ok(());
    }
    // A `let else`, not `ok_or(..)?`: that builds (and drops) an error on every hit.
    let Some(value) = key.read() else {
        return Err(CommandError::WrongType);
    };
    stats::HITS.incr();
    let ms = key.ttl_ms(clock::now_ms()).unwrap_or(NO_EXPIRY_MS);
    reply(ctx, value, ms);
    Ok(())
}
