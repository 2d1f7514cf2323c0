//! `IPCHECK LGET <key>`: the lean read, for the service's hot path.
//!
//! Reply: nil on a miss; on a hit a 2-element array `[<stored value>, <milliseconds left>]`,
//! the milliseconds as Redis's `PTTL` gives them (-1 for a key without expiry). The reader
//! decodes both with `ipcheck_core::decode_lean`, the functions `IPCHECK GET` decodes with, so
//! an `LGET` hit means exactly what the matching `GET` reply says. Read-only: served by replicas
//! and from `EVAL_RO`.
//!
//! The argument is the key itself, as `IPCHECK KEY` names it (`ipcheck:192.0.2.1`,
//! `ipcheck:{192.0.2.1}` in cluster mode): it is the declared key, so Redis checks ACL key
//! patterns and cluster slots on it before the module runs, the command filter leaves `LGET`
//! alone, and the handler does no address work at all: any argument that starts with the key
//! prefix (which no address text can) is read as given, and anything else is refused with a
//! pointer to `IPCHECK KEY`. A key that is no entry's (not canonical, or a refresh lock) reads
//! as whatever it holds; the reader's decoding says when that is not an entry, and Redis's ACL,
//! not the module, decides who may read which key.

use ipcheck_core::NO_EXPIRY_MS;

use crate::error::CommandError;
use crate::ffi::{Ctx, KeyKind, READ};
use crate::panic_guard::Args;
use crate::settings;
use crate::stats;

/// Handler for `IPCHECK|LGET`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    super::expect_len(args, 3, "lget")?;
    let prefix = settings::key_prefix().as_bytes();
    let arg = args.get(2);
    let name = match args.string(2) {
        Some(name) if arg.starts_with(prefix) => name,
        _ => {
            return Err(CommandError::LeanKey {
                given: String::from_utf8_lossy(arg).into_owned(),
                prefix: String::from_utf8_lossy(prefix).into_owned(),
            })
        }
    };
    let key = ctx.open_key(&name, READ);
    match key.kind() {
        KeyKind::Empty => {
            stats::MISSES.incr();
            ctx.reply_null();
            Ok(())
        }
        KeyKind::Other => Err(CommandError::WrongType),
        KeyKind::String => {
            // A `let else`, not `ok_or(..)?`: that builds (and drops) an error on every hit.
            let Some(value) = key.read() else {
                return Err(CommandError::WrongType);
            };
            stats::HITS.incr();
            ctx.reply_array(2);
            ctx.reply_bulk(value);
            ctx.reply_int(key.ttl_ms().unwrap_or(NO_EXPIRY_MS));
            Ok(())
        }
    }
}
