//! `IPCHECK DEL <ip>`
//!
//! Reply: integer 1 if an entry was removed, 0 if there was none. `WRONGTYPE` if the key holds
//! a non-string (not ours to delete). Replicated as `DEL <key>`.

use redis_module::raw;

use crate::acl::{self, Access};
use crate::error::CommandError;
use crate::ffi::{Ctx, KeyKind, RString, READ, WRITE};
use crate::keys::{resolve, KeyName, Origin, Routing};
use crate::panic_guard::Args;
use crate::stats;

/// A parsed `IPCHECK DEL`.
pub struct Del {
    key: KeyName,
    origin: Origin,
    /// The argument itself when it already is the key (after the command filter), so the
    /// keyspace calls use it in place instead of copying the name.
    name: Option<RString>,
}

impl Del {
    /// Validates the address and computes its key.
    pub fn parse(args: &Args) -> Result<Self, CommandError> {
        super::expect_len(args, 3, "del")?;
        let (key, origin) = resolve(args.get(2), Routing::Strict)?;
        let name = match origin {
            Origin::Key => args.string(2),
            Origin::Address => None,
        };
        Ok(Del { key, origin, name })
    }

    /// Deletes the entry, replicates the deletion, replies.
    pub fn execute(self, ctx: Ctx) -> Result<(), CommandError> {
        let name = match self.name {
            Some(name) => name,
            None => ctx.create_string(self.key.as_bytes()),
        };
        if self.origin == Origin::Address {
            acl::check(ctx, &name, &self.key.to_text(), Access::Delete)?;
        }
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
