//! One file per `IPCHECK` subcommand, `lget.rs` for the lean read `IPCHECK.LGET` and `lset.rs`
//! for the lean write `IPCHECK.LSET`. Each has a doc comment with its exact syntax, a `parse`
//! step that validates every argument before anything is touched, and an `execute` step that
//! talks to the keyspace and replies.

pub mod del;
pub mod get;
pub mod help;
pub mod key;
pub mod lget;
pub mod lset;
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
use crate::keys::{resolve, KeyName, Resolved, Routing};
use crate::panic_guard::Args;

/// The entry a GET, SET or DEL works on: the key named by the address argument (`argv[2]`).
pub enum Target<'a> {
    /// The argument already is the key (after the command filter): used in place, uncopied.
    Given(RString<'a>, &'a [u8]),
    /// The key built from an address argument.
    Built(KeyName),
}

impl<'a> Target<'a> {
    /// Resolves `argv[2]` to its key; in cluster mode the address must be canonical.
    fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        let arg = args.get(2);
        Ok(match (resolve(arg, Routing::Strict)?, args.string(2)) {
            (Resolved::Given, Some(name)) => Target::Given(name, arg),
            // Unreachable: a missing argument resolves to no key at all.
            (Resolved::Given, None) => return Err(CommandError::Internal("no key argument")),
            (Resolved::Built(key), _) => Target::Built(key),
        })
    }

    /// The key as a Redis string, and as bytes, once the caller may `access` it.
    ///
    /// When the argument was an address, Redis matched ACL key patterns against the address
    /// text, so the real key is checked here (see [`crate::acl`]).
    fn authorize(
        self,
        ctx: Ctx<'a>,
        access: Access,
    ) -> Result<(RString<'a>, KeyText<'a>), CommandError> {
        match self {
            Target::Given(name, bytes) => Ok((name, KeyText::Given(bytes))),
            Target::Built(key) => {
                let name = ctx.create_string(key.as_bytes());
                acl::check(ctx, &name, &key.to_text(), access)?;
                Ok((name, KeyText::Built(key)))
            }
        }
    }
}

/// An entry's key as bytes, for replies and messages.
pub enum KeyText<'a> {
    /// The argument, which was the key.
    Given(&'a [u8]),
    /// Built from the address argument.
    Built(KeyName),
}

impl KeyText<'_> {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Given(bytes) => bytes,
            KeyText::Built(key) => key.as_bytes(),
        }
    }

    /// The key as text (lossy; only used in messages).
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
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
