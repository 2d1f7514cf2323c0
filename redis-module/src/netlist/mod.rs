//! Network lists: named longest-prefix-match tables of IPv4/IPv6 networks inside Redis, one
//! module data type value per key (issue #12, the module part).
//!
//! - [`table`]: the list itself (pure logic, injectable clock).
//! - [`sorted`]: one family's networks: a compact sorted array plus a trie of recent additions.
//! - [`values`]: the list's distinct values, each stored once.
//! - [`record`]: the RDB encoding of one network (pure, refuses corrupt input).
//! - [`datatype`]: the `ipchk-net` data type and its persistence callbacks.
//! - [`keyspace`]: list key names and opening a key as a list.
//!
//! The `IPCHECK NET*` subcommands live in [`crate::subcommands`]; the README's "Network lists"
//! section is the reference.

pub mod datatype;
pub mod keyspace;
pub mod record;
pub mod sorted;
pub mod table;
pub mod values;

pub use table::{Item, ItemRef, NetList};
