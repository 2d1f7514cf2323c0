//! The `IPCHECK` wire format, written once: the command and subcommand names, the options of
//! `IPCHECK SET` (a declarative table: [`SET_OPTIONS`]), the fields of an `IPCHECK GET` hit in
//! reply order ([`GET_FIELDS`]), a request builder ([`SetRequest`]) and a reply parser
//! ([`parse_get`]).
//!
//! The module parses `SET` with [`SetOption::parse`] and writes the `GET` reply field by field
//! from [`GET_FIELDS`] with [`GetField::value`]; the service's Redis client and the tests build
//! `SET` with [`SetRequest::args`] and read `GET` with [`parse_get`]. A new option or field is
//! one row here plus its handling, and no end can drift from another. `IPCHECK.LGET` has no fields:
//! its reply is the stored value, decoded by [`crate::lean`].

mod get;
mod set;

pub use get::{
    parse_get, FieldValue, GetField, GetHit, NumberText, ReplyError, ReplyValue, GET_FIELDS,
};
pub use set::{Lifetime, OptionSpec, SetOption, SetRequest, SET_OPTIONS};

/// The command's name.
pub const COMMAND: &str = "IPCHECK";

/// The lean read, a command of its own rather than a subcommand: Redis's subcommand dispatch
/// would cost it more than all of ipcheck's own work in it (docs/lean-read.md).
pub const LEAN_READ: &str = "IPCHECK.LGET";

/// The lean write, the service's write-back: `IPCHECK.LSET <key> <stored value> <seconds>`. A
/// command of its own for the same reason, and it takes the value already encoded (by
/// [`crate::encode_view`]), so Redis spends no time on option words (docs/lean-read.md).
pub const LEAN_WRITE: &str = "IPCHECK.LSET";

/// The subcommand names, as clients send them (any case is accepted).
pub mod sub {
    /// `IPCHECK GET <ip>`: the entry as field/value pairs.
    pub const GET: &str = "GET";
    /// `IPCHECK SET <ip> <verdict> [options]`.
    pub const SET: &str = "SET";
    /// `IPCHECK DEL <ip>`.
    pub const DEL: &str = "DEL";
    /// `IPCHECK KEY <ip>`.
    pub const KEY: &str = "KEY";
    /// `IPCHECK STATS`.
    pub const STATS: &str = "STATS";
    /// `IPCHECK HELP`.
    pub const HELP: &str = "HELP";
}
