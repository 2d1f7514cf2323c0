//! `IPCHECK STATS`
//!
//! Reply: flat array `hits <n> misses <n> sets <n> deletes <n> errors <n> handler_panics <n>
//! filter_panics <n>`, counted on this node since the module was loaded (a replica applying
//! replicated writes does not count them).

use crate::error::CommandError;
use crate::ffi::Ctx;
use crate::panic_guard::Args;
use crate::stats::snapshot;

/// Handler for `IPCHECK|STATS`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    super::expect_len(args, 2, "stats")?;
    let counters = snapshot();
    ctx.reply_array(counters.len() * 2);
    for (name, value) in counters {
        ctx.reply_bulk(name.as_bytes());
        ctx.reply_int(i64::try_from(value).unwrap_or(i64::MAX));
    }
    Ok(())
}
