//! `IPCHECK NETDUMP <list> <cursor> [COUNT <n>]`
//!
//! Reply: `[next-cursor, [[network, value, expires-at-ms], ...]]`: at most `COUNT` (default
//! 100, at most [`MAX_COUNT`]) live networks after `<cursor>`, IPv4 first, then IPv6;
//! `expires-at-ms` is -1 for a network without expiry. Start with cursor `0`; the walk is over
//! when the next cursor is `0`. The cursor is the last network returned, so a walk while the list
//! changes still returns every network that stayed in it from start to end exactly once. A
//! missing list replies `["0", []]`.

use ipcheck_core::normalize_network;

use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, READ};
use crate::netlist::keyspace::{check_list_key, ListKey};
use crate::panic_guard::Args;
use crate::settings::parse_int;

/// Most networks one call returns.
pub const MAX_COUNT: i64 = 10_000;
const DEFAULT_COUNT: usize = 100;

/// Handler for `IPCHECK|NETDUMP`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    let count = match args.len() {
        4 => DEFAULT_COUNT,
        6 if args.get(4).eq_ignore_ascii_case(b"COUNT") => {
            let v = args.get(5);
            let n = parse_int(v, 1, MAX_COUNT).map_err(|_| CommandError::Count {
                given: String::from_utf8_lossy(v).into_owned(),
            })?;
            usize::try_from(n).unwrap_or(DEFAULT_COUNT)
        }
        6 => {
            return Err(CommandError::NetSyntax(format!(
                "unknown option '{}' (expected COUNT)",
                String::from_utf8_lossy(args.get(4))
            )))
        }
        _ => return Err(CommandError::Arity("netdump")),
    };
    check_list_key(args.get(2))?;
    let raw_cursor = args.get(3);
    let cursor =
        if raw_cursor == b"0" {
            None
        } else {
            Some(normalize_network(raw_cursor).map_err(|_| {
                CommandError::Cursor(String::from_utf8_lossy(raw_cursor).into_owned())
            })?)
        };
    let name = args.string(2).ok_or(CommandError::Arity("netdump"))?;
    let key = ListKey::open(ctx, &name, READ)?;
    let mut page = Vec::new();
    let mut more = false;
    if let Some(list) = key.list() {
        let mut it = list.after(cursor, clock::now_ms());
        page.extend(it.by_ref().take(count));
        more = it.next().is_some();
    }
    let next = match page.last() {
        Some((net, _)) if more => net.to_string(),
        _ => "0".to_owned(),
    };
    ctx.reply_array(2);
    ctx.reply_bulk(next.as_bytes());
    ctx.reply_array(page.len());
    for (net, item) in page {
        ctx.reply_array(3);
        ctx.reply_bulk(net.to_string().as_bytes());
        ctx.reply_bulk(item.value.as_bytes());
        ctx.reply_int(if item.expires_at == 0 {
            -1
        } else {
            item.expires_at
        });
    }
    Ok(())
}
