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
    c"    key, fresh, fresh_ttl, country, asn, score), or nil when there is none. ttl: seconds",
    c"    until the entry is gone; fresh: 1 within its fresh time, 0 once stale; fresh_ttl:",
    c"    seconds of fresh time left (0 when stale); country, asn, score: empty when unknown.",
    c"SET <ip> <verdict> [EX <seconds> | PERSIST] [STALE <seconds>] [REASON <reasons>]",
    c"    [SOURCE <source>] [COUNTRY <cc>] [ASN <n>] [SCORE <0-100>] [FORCE]",
    c"    Cache <verdict> (allow, block or challenge) for <ip>, fresh for EX seconds (default: the",
    c"    ipcheck.default-ttl config), then stale for STALE more seconds (default 0), then gone.",
    c"    REASON is a comma-separated list of [a-z0-9_-] tokens, SOURCE one token (default api).",
    c"    An entry with SOURCE manual (never stale: no STALE) is kept, and nil returned, unless",
    c"    the new SET is also manual or says FORCE. PERSIST (only with SOURCE manual): the pin",
    c"    never expires. COUNTRY (two letters), ASN (13335 or AS13335) and SCORE (0 to 100)",
    c"    record what is known about <ip>; each is unknown when not given.",
    c"DEL <ip>",
    c"    Delete the entry for <ip>. Return 1 if it existed, 0 otherwise.",
    c"KEY <ip>",
    c"    Return the Redis key <ip> maps to, reading nothing.",
    c"NETADD <list> <network> [VALUE <reasons>] [PXAT <unix-ms>] [<network> ...]",
    c"    Add networks (any prefix length, IPv4 or IPv6) to the network list <list>, a key",
    c"    <prefix>{lists}:<name>. VALUE (reason tokens) and PXAT (absolute expiry) apply to the",
    c"    network before them. Return how many were new.",
    c"NETDEL <list> <network> [<network> ...]",
    c"    Remove networks from <list>. Return how many were there.",
    c"NETMATCH <ip> <list> [<list> ...]",
    c"    Return [network, value, list] for the longest live network covering <ip> in any of",
    c"    the lists (the first list wins a tie), or nil.",
    c"NETINFO <list>",
    c"    Return v4, v6 (live network counts) and memory (bytes), or nil without the list.",
    c"NETDUMP <list> <cursor> [COUNT <n>]",
    c"    Return [next-cursor, [[network, value, expires-at-ms or -1], ...]]; start with 0, done",
    c"    when next-cursor is 0.",
    c"STATS",
    c"    Return counters since load: hits, misses, sets, deletes, errors.",
    c"HELP",
    c"    Print this help.",
    c"The lean read is a command of its own: IPCHECK.LGET <key> returns \"<milliseconds left>",
    c"<stored value>\" for <key> (as KEY names it, not an address; -1: no expiry), or nil.",
    c"Decode it with ipcheck-core's decode_lean_reply. (LGET <key>, its previous form, answers",
    c"[stored value, milliseconds left].)",
    c"The lean write too: IPCHECK.LSET <key> <stored value> <seconds> stores a value exactly as",
    c"SET stores it (ipcheck-core's encode_stored writes it; no pins), fresh for <seconds> plus",
    c"its stale window; OK, or nil when a manual pin is kept.",
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

#[cfg(test)]
mod tests {
    use ipcheck_core::protocol::{GET_FIELDS, SET_OPTIONS};

    use super::LINES;

    #[test]
    fn help_names_every_option_and_field() {
        let text: String = LINES.iter().map(|l| l.to_string_lossy() + "\n").collect();
        for row in &SET_OPTIONS {
            assert!(
                text.contains(&format!("{} ", row.name))
                    || text.contains(&format!("{}]", row.name)),
                "{}",
                row.name
            );
        }
        for field in GET_FIELDS {
            assert!(text.contains(field.name()), "{}", field.name());
        }
    }
}
