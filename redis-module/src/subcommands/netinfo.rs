//! `IPCHECK NETINFO <list>`
//!
//! Reply: nil when the list does not exist, else the flat array
//! `v4 <live IPv4 networks> v6 <live IPv6 networks> memory <bytes>` (`memory` as
//! `MEMORY USAGE` counts the value: tries and values, not the key).

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ};
use crate::netlist::keyspace::{check_list_key, ListKey};
use crate::panic_guard::Args;

/// Handler for `IPCHECK|NETINFO`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    super::expect_len(args, 3, "netinfo")?;
    check_list_key(args.get(2))?;
    let name = args.string(2).ok_or(CommandError::Arity("netinfo"))?;
    let key = ListKey::open(ctx, &name, READ)?;
    let Some(list) = key.list() else {
        ctx.reply_null();
        return Ok(());
    };
    let (v4, v6) = list.live_counts(clock::now_ms());
    ctx.reply_array(6);
    ctx.reply_bulk(b"v4");
    ctx.reply_int(v4 as i64);
    ctx.reply_bulk(b"v6");
    ctx.reply_int(v6 as i64);
    ctx.reply_bulk(b"memory");
    ctx.reply_int(list.memory() as i64);
    Ok(())
}
