//! `IPCHECK.LSET <key> <stored value> <seconds>`: the lean write, for the service's write-back.
//!
//! `IPCHECK SET` spends most of ipcheck's share of a call on what a person typing it needs: the
//! address turned into a key (in the command filter, so ACL rules see the real key), option words,
//! validation of each field, and the encoding. The service has all of that at hand already: it
//! names the key as `IPCHECK KEY` does (`ipcheck_core::entry_key`) and encodes the entry with
//! `ipcheck_core::encode_stored`, the encoder `IPCHECK SET` uses. So this command takes both as
//! they are, and checks them rather than building them (docs/lean-read.md, bench/README.md):
//!
//! - `<key>` must be an entry's key under the settings in force (`IPCHECK KEY <ip>` names it),
//!   the declared key, so Redis checks ACL key patterns and cluster slots on it before the module
//!   runs and the command filter leaves the call alone.
//! - `<stored value>` must be byte for byte what `IPCHECK SET` stores for the entry it decodes
//!   to (`ipcheck_core::check_canonical`), so every reader decodes it as it would that SET's
//!   value. A manual pin is refused: pins are set with `IPCHECK SET ... SOURCE manual`.
//! - `<seconds>`: 1..=31536000 seconds the entry is fresh, as `IPCHECK SET`'s `EX`; the key lives
//!   that long plus the stale window the value carries, as with `IPCHECK SET ... STALE`.
//!
//! Then it stores exactly as `IPCHECK SET` does (the same code, [`super::set::Write`]): a
//! manual pin already there is kept (reply nil), otherwise `OK`; replicated as
//! `SET <key> <value> PXAT <ms>`; keyspace events `set` and `expire`.

use ipcheck_core::check_canonical;

use crate::error::CommandError;
use crate::ffi::{Ctx, Payload};
use crate::keys::is_entry_key;
use crate::panic_guard::Args;
use crate::settings::{self, parse_int, MAX_TTL};

use super::set::{Expiry, Write};

/// Handler for `IPCHECK.LSET <key> <stored value> <seconds>`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    if args.len() != 4 {
        return Err(CommandError::TopArity("ipcheck.lset"));
    }
    let given = args.get(1);
    let name = match args.string(1) {
        Some(name) if is_entry_key(given) => name,
        _ => {
            return Err(CommandError::LeanWriteKey {
                given: String::from_utf8_lossy(given).into_owned(),
                prefix: String::from_utf8_lossy(settings::key_prefix().as_bytes()).into_owned(),
            })
        }
    };
    let value = args.get(2);
    let value_arg = args.string(2);
    let checked = check_canonical(value).map_err(CommandError::LeanValue)?;
    if checked.manual {
        return Err(CommandError::LeanPin);
    }
    let secs = args.get(3);
    let secs = parse_int(secs, 1, MAX_TTL)
        .map_err(|_| CommandError::Ttl(String::from_utf8_lossy(secs).into_owned()))?;
    // Replicated as the argument it came in, retained rather than copied.
    let value = match &value_arg {
        Some(arg) => Payload::String(arg, value),
        None => Payload::Bytes(value),
    };
    Write {
        name,
        value,
        manual: false,
        stale_secs: checked.stale_secs,
        expiry: Expiry::After(secs),
        force: false,
    }
    .execute(ctx)
}
