//! `IPCHECK DEL <ip>`
//!
//! Reply: integer 1 if an entry was removed, 0 if there was none. `WRONGTYPE` if the key holds
//! a non-string (not ours to delete). Replicated as `DEL <key>`.

use redis_module::raw;

use crate::acl::Access;
use crate::error::CommandError;
use crate::ffi::{Ctx, KeyKind, READ, WRITE};
use crate::panic_guard::Args;
use crate::stats;

use super::Target;

/// A parsed `IPCHECK DEL`.
pub struct Del<'a> {
    target: Target<'a>,
}

impl<'a> Del<'a> {
    /// Validates the address and computes its key.
    pub fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        super::expect_len(args, 3, "del")?;
        let target = Target::parse(args)?;
        Ok(Del { target })
    }

    /// Deletes the entry, replicates the deletion, replies.
    pub fn execute(self, ctx: Ctx<'a>) -> Result<(), CommandError> {
        let (name, _) = self.target.authorize(ctx, Access::Delete)?;
        let mut key = ctx.open_key(&name, READ | WRITE);
        match key.kind() {
            KeyKind::Empty => {
                ctx.reply_int(0);
                Ok(())
            }
            KeyKind::Other => Err(CommandError::WrongType),
            KeyKind::String => {
                key.delete()
                    .map_err(|_| CommandError::Internal("Redis refused to delete the key"))?;
                drop(key);
                ctx.signal_modified(&name);
                ctx.replicate_del(&name);
                ctx.notify(raw::REDISMODULE_NOTIFY_GENERIC, c"del", &name);
                stats::DELETES.incr();
                ctx.reply_int(1);
                Ok(())
            }
        }
    }
}

/// Handler for `IPCHECK|DEL`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    Del::parse(args)?.execute(ctx)
}
