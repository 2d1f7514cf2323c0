//! `IPCHECK NETMATCH <ip> <list> [<list> ...]`
//!
//! Reply: the longest live network covering `<ip>` across the lists, as the array
//! `[network, value, list]` (`list` is the key as given), or nil when none matches. On equal
//! prefix lengths the list given first wins. A missing list matches nothing; a key of another
//! type is `WRONGTYPE`. `<ip>` is an address (or a network: the longest list network covering
//! all of it). Read-only: served by replicas, callable from Lua and `EVAL_RO`.

use ipcheck_core::normalize_network;
use ipnet::IpNet;

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ};
use crate::netlist::keyspace::{check_list_key, ListKey};
use crate::panic_guard::Args;

/// Handler for `IPCHECK|NETMATCH`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    if args.len() < 4 {
        return Err(CommandError::Arity("netmatch"));
    }
    let ip = normalize_network(args.get(2)).map_err(CommandError::Network)?;
    for i in 3..args.len() {
        check_list_key(args.get(i))?;
    }
    let now = clock::now_ms();
    let mut best: Option<(IpNet, Box<str>, usize)> = None;
    for i in 3..args.len() {
        let name = args.string(i).ok_or(CommandError::Arity("netmatch"))?;
        let key = ListKey::open(ctx, &name, READ)?;
        let Some((net, item)) = key.list().and_then(|l| l.lookup(&ip, now)) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(b, _, _)| net.prefix_len() > b.prefix_len())
        {
            best = Some((net, item.value.into(), i));
        }
    }
    match best {
        None => ctx.reply_null(),
        Some((net, value, i)) => {
            ctx.reply_array(3);
            ctx.reply_bulk(net.to_string().as_bytes());
            ctx.reply_bulk(value.as_bytes());
            ctx.reply_bulk(args.get(i));
        }
    }
    Ok(())
}
