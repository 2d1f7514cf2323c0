//! One file per `IPCHECK` subcommand, and `lget.rs` for the lean read `IPCHECK.LGET`. Each has a
//! doc comment with its exact syntax, a `parse` step that validates every argument before
//! anything is touched, and an `execute` step that talks to the keyspace and replies.

pub mod del;
pub mod get;
pub mod help;
pub mod key;
pub mod lget;
pub mod netadd;
pub mod netdel;
pub mod netdump;
pub mod netinfo;
pub mod netmatch;
mod netwrite;
pub mod set;
pub mod stats;

use crate::acl::{self, Access};
use crate::error::CommandError;
use crate::ffi::{Ctx, RString};
use crate::keys::{resolve, KeyName, Origin, Routing};
use crate::panic_guard::Args;

/// The entry a GET, SET or DEL works on: the key named by the address argument (`argv[2]`).
pub struct Target<'a> {
    key: KeyName,
    origin: Origin,
    /// The argument itself when it already is the key (after the command filter), so the
    /// keyspace calls use it in place instead of copying the name.
    arg: Option<RString<'a>>,
}

impl<'a> Target<'a> {
    /// Resolves `argv[2]` to its key; in cluster mode the address must be canonical.
    fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        let (key, origin) = resolve(args.get(2), Routing::Strict)?;
        let arg = match origin {
            Origin::Key => args.string(2),
            Origin::Address => None,
        };
        Ok(Target { key, origin, arg })
    }

    /// The key as a Redis string, once the caller may `access` it.
    ///
    /// When the argument was an address, Redis matched ACL key patterns against the address
    /// text, so the real key is checked here (see [`crate::acl`]).
    fn authorize(
        self,
        ctx: Ctx<'a>,
        access: Access,
    ) -> Result<(KeyName, RString<'a>), CommandError> {
        let name = match self.arg {
            Some(arg) => arg,
            None => ctx.create_string(self.key.as_bytes()),
        };
        if self.origin == Origin::Address {
            acl::check(ctx, &name, &self.key.to_text(), access)?;
        }
        Ok((self.key, name))
    }
}

/// Checks the argument count (Redis checks arity first; this keeps the parsers total anyway).
fn expect_len(args: &Args, n: usize, name: &'static str) -> Result<(), CommandError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CommandError::Arity(name))
    }
}
