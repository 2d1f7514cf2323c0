//! One file per `IPCHECK` subcommand. Each has a doc comment with its exact syntax, a `parse`
//! step that validates every argument before anything is touched, and an `execute` step that
//! talks to the keyspace and replies.

pub mod del;
pub mod get;
pub mod help;
pub mod key;
pub mod set;
pub mod stats;

use crate::error::CommandError;
use crate::panic_guard::Args;

/// Checks the argument count (Redis checks arity first; this keeps the parsers total anyway).
fn expect_len(args: &Args, n: usize, name: &'static str) -> Result<(), CommandError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CommandError::Arity(name))
    }
}
