//! `IPCHECK HELP`
//!
//! Reply: an array of status lines describing the subcommands, in the shape of Redis's own container
//! commands (`CONFIG HELP`, `OBJECT HELP`).

use std::ffi::CStr;

use crate::error::CommandError;
use crate::ffi::Ctx;
use crate::panic_guard::Args;

/// The help text, one reply element per line.
pub const LINES: &[&CStr] = &[
    c"IPCHECK <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    c"GET <ip>",
    c"    Return the cached verdict for <ip> as field/value pairs (verdict, reason, source, ttl,",
    c"    key), or nil when there is none.",
    c"SET <ip> <verdict> [EX <seconds>] [REASON <reasons>] [SOURCE <source>] [FORCE]",
    c"    Cache <verdict> (allow, block or challenge) for <ip> for EX seconds (default: the",
    c"    ipcheck.default-ttl config). REASON is a comma-separated list of [a-z0-9_-] tokens,",
    c"    SOURCE one token (default api). An entry with SOURCE manual is kept, and nil returned,",
    c"    unless the new SET is also manual or says FORCE.",
    c"DEL <ip>",
    c"    Delete the entry for <ip>. Return 1 if it existed, 0 otherwise.",
    c"KEY <ip>",
    c"    Return the Redis key <ip> maps to, reading nothing.",
    c"STATS",
    c"    Return counters since load: hits, misses, sets, deletes, errors.",
    c"HELP",
    c"    Print this help.",
];

/// Handler for `IPCHECK|HELP`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    super::expect_len(args, 2, "help")?;
    ctx.reply_array(LINES.len());
    for line in LINES {
        ctx.reply_simple(line);
    }
    Ok(())
}
