//! `IPCHECK KEY <ip>`
//!
//! Reply: the key the address maps to under the settings in force (bulk string), reading
//! nothing. In cluster mode any spelling is accepted and the hash-tagged key is returned, so a
//! client can learn the canonical form to send.

use crate::error::CommandError;
use crate::ffi::Ctx;
use crate::keys::{resolve, Resolved, Routing};
use crate::panic_guard::Args;

use super::KeyText;

/// A parsed `IPCHECK KEY`.
pub struct Key<'a> {
    key: KeyText<'a>,
}

impl<'a> Key<'a> {
    /// Validates the address and computes its key.
    pub fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        super::expect_len(args, 3, "key")?;
        let arg = args.get(2);
        let key = match resolve(arg, Routing::AnySpelling)? {
            Resolved::Given => KeyText::Given(arg),
            Resolved::Built(key) => KeyText::Built(key),
        };
        Ok(Key { key })
    }

    /// Replies with the key.
    pub fn execute(self, ctx: Ctx) -> Result<(), CommandError> {
        ctx.reply_bulk(self.key.as_bytes());
        Ok(())
    }
}

/// Handler for `IPCHECK|KEY`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    Key::parse(args)?.execute(ctx)
}
