//! `IPCHECK GET <ip>`
//!
//! Reply: nil on a miss; on a hit a flat array
//! `verdict <v> reason <reasons> source <source> ttl <seconds left> key <key>
//! fresh <1|0> fresh_ttl <seconds> country <cc> asn <n> score <0-100>`, written field by field
//! from `ipcheck_core::protocol::GET_FIELDS`, the table clients parse it with.
//! `ttl` is the time until the entry is gone, rounded as Redis's `TTL` rounds (to the nearest
//! second) and counted by the module's clock (`crate::clock`, a few milliseconds behind
//! Redis's at most), or -1 if the key somehow has no expiry. `fresh` is 1 while the entry is within its
//! fresh time (always for an entry written without `STALE`, and for a manual pin), 0 once it is
//! stale; `fresh_ttl` is the seconds of fresh time left, rounded as `ttl` is (so equal to `ttl`
//! without a stale window; 0 when stale; -1 without expiry). `country`, `asn`, `score` are bulk
//! strings, empty when unknown (as `reason` is when there are none). Fields are only appended:
//! a reader that stops after `key` or `fresh_ttl` still works. Read-only: served by replicas
//! and from `EVAL_RO`.

use ipcheck_core::protocol::{FieldValue, GetHit, NumberText, GET_FIELDS};
use ipcheck_core::{decode_entry_view, freshness, ttl_secs, ViewScratch};

use crate::acl::Access;
use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, KeyKind, READ};
use crate::panic_guard::Args;
use crate::stats;

use super::Target;

/// A parsed `IPCHECK GET`.
pub struct Get<'a> {
    target: Target<'a>,
}

impl<'a> Get<'a> {
    /// Validates the address and computes its key.
    pub fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        super::expect_len(args, 3, "get")?;
        let target = Target::parse(args)?;
        Ok(Get { target })
    }

    /// Reads the entry and replies.
    pub fn execute(self, ctx: Ctx<'a>) -> Result<(), CommandError> {
        let (name, key_name) = self.target.authorize(ctx, Access::Read)?;
        let key = ctx.open_key(&name, READ);
        match key.kind() {
            KeyKind::Empty => {
                stats::MISSES.incr();
                ctx.reply_null();
                Ok(())
            }
            KeyKind::Other => Err(CommandError::WrongType),
            KeyKind::String => {
                let value = key.read().ok_or(CommandError::WrongType)?;
                let mut scratch = ViewScratch::new();
                let entry = decode_entry_view(value, &mut scratch).map_err(|source| {
                    CommandError::Corrupt {
                        key: key_name.to_text(),
                        source,
                    }
                })?;
                // Rounded as Redis's TTL command rounds (and as an LGET reader rounds).
                let remaining_ms = key.ttl_ms(clock::now_ms());
                let ttl = ttl_secs(remaining_ms);
                let fresh = freshness(remaining_ms, entry.stale_secs);
                stats::HITS.incr();
                let hit = GetHit {
                    verdict: entry.verdict,
                    reasons: entry.reasons,
                    source: entry.source,
                    ttl_secs: ttl,
                    key: key_name.as_bytes(),
                    freshness: fresh,
                    attributes: entry.attributes,
                };
                ctx.reply_array(2 * GET_FIELDS.len());
                let mut number = NumberText::default();
                for field in GET_FIELDS {
                    ctx.reply_bulk(field.name().as_bytes());
                    match field.value(&hit, &mut number) {
                        FieldValue::Text(bytes) => ctx.reply_bulk(bytes),
                        FieldValue::Int(n) => ctx.reply_int(n),
                    }
                }
                Ok(())
            }
        }
    }
}

/// Handler for `IPCHECK|GET`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    Get::parse(args)?.execute(ctx)
}
