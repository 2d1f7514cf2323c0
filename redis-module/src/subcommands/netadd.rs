//! `IPCHECK NETADD <list> <network> [VALUE <reasons>] [PXAT <unix-ms>] [<network> [VALUE ..]
//! [PXAT ..] ...]`
//!
//! Reply: integer, how many networks were not in the list before (a replaced one counts 0).
//!
//! - `<list>`: the list's key, `<prefix>{lists}:<name>` (see [`crate::netlist::keyspace`]).
//! - `<network>`: `addr` or `addr/len`, IPv4 or IPv6, any prefix length; host bits are zeroed
//!   and IPv4-mapped IPv6 becomes IPv4. Adding a network that is there replaces its value and
//!   expiry.
//! - `VALUE`: reason tokens for the network just before it, validated as `IPCHECK SET ...
//!   REASON` (default empty).
//! - `PXAT`: absolute expiry in Unix ms for the network just before it (default: never). A time
//!   already past removes the network instead (as `SET ... PXAT` in the past does).
//!
//! All networks are parsed before anything is touched: one bad argument and nothing changes.
//! Expired networks of the list are dropped on the way. The command reaches replicas and the AOF
//! verbatim: every expiry in it is absolute already.

use ipcheck_core::{normalize_network, Reasons};
use ipnet::IpNet;

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ, WRITE};
use crate::netlist::keyspace::{check_list_key, ListKey};
use crate::netlist::{Item, NetList};
use crate::panic_guard::Args;
use crate::settings::parse_int;

use super::netwrite::finish_write;

/// Latest `PXAT` accepted: the last millisecond of year 9999.
pub const MAX_PXAT: i64 = 253_402_300_799_999;

/// A parsed `IPCHECK NETADD`.
pub struct NetAdd {
    adds: Vec<(IpNet, Item)>,
}

/// Parses the `<network> [VALUE ..] [PXAT ..]` groups starting at `args[3]`.
fn parse_groups(args: &Args) -> Result<Vec<(IpNet, Item)>, CommandError> {
    let mut adds: Vec<(IpNet, Item, bool, bool)> = Vec::new();
    let mut i = 3;
    while i < args.len() {
        let word = args.get(i);
        let is_value = word.eq_ignore_ascii_case(b"VALUE");
        let is_pxat = word.eq_ignore_ascii_case(b"PXAT");
        if !is_value && !is_pxat {
            let net = normalize_network(word).map_err(CommandError::Network)?;
            adds.push((
                net,
                Item {
                    value: "".into(),
                    expires_at: 0,
                },
                false,
                false,
            ));
            i += 1;
            continue;
        }
        let name = if is_value { "VALUE" } else { "PXAT" };
        let Some(last) = adds.last_mut() else {
            return Err(CommandError::NetSyntax(format!(
                "{name} must follow the network it applies to"
            )));
        };
        if i + 1 >= args.len() {
            return Err(CommandError::MissingValue(name));
        }
        let v = args.get(i + 1);
        let seen = if is_value { &mut last.2 } else { &mut last.3 };
        if std::mem::replace(seen, true) {
            return Err(CommandError::NetSyntax(format!(
                "{name} given twice for network {}",
                last.0
            )));
        }
        if is_value {
            let text = String::from_utf8_lossy(v);
            let r = Reasons::parse(&text).map_err(CommandError::Value)?;
            last.1.value = r.as_str().into();
        } else {
            last.1.expires_at = parse_int(v, 1, MAX_PXAT).map_err(|_| CommandError::Pxat {
                given: String::from_utf8_lossy(v).into_owned(),
            })?;
        }
        i += 2;
    }
    if adds.is_empty() {
        return Err(CommandError::Arity("netadd"));
    }
    Ok(adds.into_iter().map(|(n, item, _, _)| (n, item)).collect())
}

impl NetAdd {
    /// Validates every argument; nothing is touched until all are good.
    pub fn parse(args: &Args) -> Result<Self, CommandError> {
        if args.len() < 4 {
            return Err(CommandError::Arity("netadd"));
        }
        check_list_key(args.get(2))?;
        Ok(NetAdd {
            adds: parse_groups(args)?,
        })
    }

    /// Applies the additions, replicates the command, replies.
    pub fn execute(self, ctx: Ctx, args: &Args) -> Result<(), CommandError> {
        let name = args.string(2).ok_or(CommandError::Arity("netadd"))?;
        let mut key = ListKey::open(ctx, &name, READ | WRITE)?;
        let now = clock::now_ms();
        let mut added = 0i64;
        let existed = key.list().is_some();
        let mut fresh = NetList::new();
        {
            let list = match key.list_mut() {
                Some(list) => {
                    list.drop_expired(now);
                    list
                }
                None => &mut fresh,
            };
            for (net, item) in self.adds {
                if item.live(now) {
                    added += i64::from(list.insert(net, item));
                } else {
                    list.remove(&net);
                }
            }
        }
        if !existed && !fresh.is_empty() {
            key.create(fresh)?;
        } else if key.list().is_some_and(NetList::is_empty) {
            key.delete()?;
        }
        drop(key);
        finish_write(ctx, &name, c"ipcheck.netadd");
        ctx.reply_int(added);
        Ok(())
    }
}

/// Handler for `IPCHECK|NETADD`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    NetAdd::parse(args)?.execute(ctx, args)
}
