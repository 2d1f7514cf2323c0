//! `IPCHECK NETDEL <list> <network> [<network> ...]`
//!
//! Reply: integer, how many of the networks were in the list (exact match, after the same
//! normalization as `NETADD`; a covering or covered network is not removed). A list left empty
//! is deleted. Replicated verbatim.

use ipcheck_core::normalize_network;
use ipnet::IpNet;

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ, WRITE};
use crate::netlist::keyspace::{check_list_key, ListKey};
use crate::netlist::NetList;
use crate::panic_guard::Args;

use super::netwrite::finish_write;

/// A parsed `IPCHECK NETDEL`.
pub struct NetDel {
    nets: Vec<IpNet>,
}

impl NetDel {
    /// Validates every argument; nothing is touched until all are good.
    pub fn parse(args: &Args) -> Result<Self, CommandError> {
        if args.len() < 4 {
            return Err(CommandError::Arity("netdel"));
        }
        check_list_key(args.get(2))?;
        let nets = (3..args.len())
            .map(|i| normalize_network(args.get(i)).map_err(CommandError::Network))
            .collect::<Result<_, _>>()?;
        Ok(NetDel { nets })
    }

    /// Removes the networks, replicates the command, replies.
    pub fn execute(self, ctx: Ctx, args: &Args) -> Result<(), CommandError> {
        let name = args.string(2).ok_or(CommandError::Arity("netdel"))?;
        let mut key = ListKey::open(ctx, &name, READ | WRITE)?;
        let now = clock::now_ms();
        let Some(list) = key.list_mut() else {
            ctx.reply_int(0);
            return Ok(());
        };
        list.drop_expired(now);
        let removed = self
            .nets
            .iter()
            .filter(|n| list.remove(n).is_some())
            .count();
        if key.list().is_some_and(NetList::is_empty) {
            key.delete()?;
        }
        drop(key);
        finish_write(ctx, &name, c"ipcheck.netdel");
        ctx.reply_int(removed as i64);
        Ok(())
    }
}

/// Handler for `IPCHECK|NETDEL`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    NetDel::parse(args)?.execute(ctx, args)
}
