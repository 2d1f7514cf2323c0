//! `IPCHECK SET <ip> <verdict> [EX <seconds> | PERSIST] [STALE <seconds>] [REASON <reasons>]
//! [SOURCE <source>] [COUNTRY <cc>] [ASN <n>] [SCORE <0-100>] [FORCE]`
//!
//! The option words are `ipcheck_core::protocol::SET_OPTIONS`, the table clients build calls
//! from.
//!
//! Reply: `OK`, or nil when an existing `manual` entry was kept.
//!
//! - `<verdict>`: `allow`, `block` or `challenge`, any case, stored lowercase.
//! - `EX`: 1..=31536000 seconds the entry is fresh; default `ipcheck.default-ttl` (86400).
//! - `STALE`: 0..=31536000 seconds the entry stays, stale, after its fresh time (default 0:
//!   gone when no longer fresh). The key expires after EX + STALE; the value records STALE so
//!   `IPCHECK GET` can tell fresh from stale. Refused with `SOURCE manual` (a pin is final).
//! - `PERSIST`: the entry never expires (no TTL in Redis; `IPCHECK GET` replies `ttl -1`, fresh).
//!   Only with `SOURCE manual`, and not with `EX`: a provider answer must age out, and an
//!   operator's pin without a duration must not. A manual SET without `EX` or `PERSIST` still
//!   expires after `ipcheck.default-ttl`, as it always did.
//! - `REASON`: comma-separated `[a-z0-9_-]+` tokens, at most 128 bytes; default empty.
//! - `SOURCE`: one token; default `api`. `manual` marks an operator's pin.
//! - `COUNTRY`: two letters (ISO 3166-1 alpha-2), any case, stored uppercase.
//! - `ASN`: the AS number, 1..=4294967295, as `13335` or `AS13335`.
//! - `SCORE`: a risk score, a whole number 0..=100.
//!   Each attribute is unknown when not given; a pin may carry them too. An entry with none
//!   stores no attribute fields (see `ipcheck_core::encoding`).
//! - `FORCE`: replace a manual pin even though this SET is not manual.
//!
//! Option names are case-insensitive and each may appear once. The write reaches replicas and
//! the AOF as `SET <key> <value> PXAT <absolute ms>`, so a replay never extends the TTL; the
//! value carries the stale window and PXAT the end of it, so a replica tells fresh from stale
//! exactly as the primary does. A `PERSIST` entry is replicated as plain `SET <key> <value>`,
//! which leaves the replica's key without a TTL too.

use std::borrow::Cow;

use ipcheck_core::protocol::SetOption;
use ipcheck_core::{
    check_reasons, check_source, encode_view, is_manual_pin, Asn, Attributes, Country, EntryView,
    Score, Source, TokenError, Verdict, MAX_STALE,
};
use redis_module::raw;

use crate::acl::Access;
use crate::clock;
use crate::error::CommandError;
use crate::ffi::{Ctx, KeyKind, Payload, RString, READ, WRITE};
use crate::panic_guard::Args;
use crate::settings::{self, parse_int, MAX_TTL};
use crate::stats;

use super::Target;

/// When a written entry goes away.
#[derive(Clone, Copy)]
pub enum Expiry {
    /// This many seconds of fresh time (then the stale window).
    After(i64),
    /// Never (`PERSIST`).
    Never,
}

/// A parsed `IPCHECK SET`. The entry borrows its reason list and source from the arguments
/// (validated in place) and is encoded on the stack: a SET allocates nothing on the heap.
pub struct Set<'a> {
    target: Target<'a>,
    /// The entry and its stale window.
    entry: EntryView<'a>,
    expiry: Expiry,
    force: bool,
}

impl<'a> Set<'a> {
    /// Validates every argument; nothing is touched until all are good.
    pub fn parse(args: &Args<'a>) -> Result<Self, CommandError> {
        if args.len() < 4 {
            return Err(CommandError::Arity("set"));
        }
        let target = Target::parse(args)?;
        let verdict: Verdict = utf8(args.get(3)).parse()?;
        let mut ttl: Option<i64> = None;
        let mut stale: Option<i64> = None;
        let mut reasons: Option<&str> = None;
        let mut source: Option<&str> = None;
        let mut country: Option<Country> = None;
        let mut asn: Option<Asn> = None;
        let mut score: Option<Score> = None;
        let mut force = false;
        let mut persist = false;
        let mut rest = (4..args.len()).map(|i| args.get(i));
        while let Some(word) = rest.next() {
            let opt = SetOption::parse(word).ok_or_else(|| {
                CommandError::UnknownOption(String::from_utf8_lossy(word).into_owned())
            })?;
            let mut value = || {
                rest.next()
                    .ok_or_else(|| CommandError::MissingValue(opt.name()))
            };
            match opt {
                SetOption::Ex => {
                    let v = value()?;
                    let secs = parse_int(v, 1, MAX_TTL)
                        .map_err(|_| CommandError::Ttl(String::from_utf8_lossy(v).into_owned()))?;
                    once(&mut ttl, secs, opt)?;
                }
                SetOption::Stale => {
                    let v = value()?;
                    let secs = parse_int(v, 0, i64::from(MAX_STALE)).map_err(|_| {
                        CommandError::Stale(String::from_utf8_lossy(v).into_owned())
                    })?;
                    once(&mut stale, secs, opt)?;
                }
                SetOption::Reason => {
                    let r = token(value()?, check_reasons).map_err(CommandError::Reason)?;
                    once(&mut reasons, r, opt)?;
                }
                SetOption::Source => {
                    let s = token(value()?, check_source).map_err(CommandError::Source)?;
                    once(&mut source, s, opt)?;
                }
                SetOption::Country => {
                    let c = Country::parse(&utf8(value()?)).map_err(CommandError::Attribute)?;
                    once(&mut country, c, opt)?;
                }
                SetOption::Asn => {
                    let a = Asn::parse(&utf8(value()?)).map_err(CommandError::Attribute)?;
                    once(&mut asn, a, opt)?;
                }
                SetOption::Score => {
                    let n = Score::parse(&utf8(value()?)).map_err(CommandError::Attribute)?;
                    once(&mut score, n, opt)?;
                }
                SetOption::Force => {
                    if std::mem::replace(&mut force, true) {
                        return Err(CommandError::DuplicateOption(opt.name()));
                    }
                }
                SetOption::Persist => {
                    if std::mem::replace(&mut persist, true) {
                        return Err(CommandError::DuplicateOption(opt.name()));
                    }
                }
            }
        }
        let entry = EntryView {
            verdict,
            reasons: reasons.unwrap_or(""),
            source: source.unwrap_or(Source::API),
            // In range by parse_int above.
            stale_secs: u32::try_from(stale.unwrap_or(0)).unwrap_or(0),
            attributes: Attributes {
                country,
                asn,
                score,
            },
        };
        if entry.stale_secs > 0 && entry.is_manual() {
            return Err(CommandError::StalePin);
        }
        let expiry = match (persist, ttl) {
            (false, ttl) => Expiry::After(ttl.unwrap_or_else(settings::default_ttl)),
            (true, Some(_)) => return Err(CommandError::PersistWithEx),
            (true, None) if !entry.is_manual() => return Err(CommandError::PersistNotManual),
            (true, None) => Expiry::Never,
        };
        Ok(Set {
            target,
            entry,
            expiry,
            force,
        })
    }

    /// Stores the entry (unless a manual pin stands), replicates it, replies.
    pub fn execute(self, ctx: Ctx<'a>) -> Result<(), CommandError> {
        let (name, _) = self.target.authorize(ctx, Access::Write)?;
        let value = encode_view(&self.entry);
        Write {
            name,
            value: Payload::Bytes(value.as_bytes()),
            manual: self.entry.is_manual(),
            stale_secs: self.entry.stale_secs,
            expiry: self.expiry,
            force: self.force,
        }
        .execute(ctx)
    }
}

/// An encoded entry about to be stored under a key the caller may write: what `IPCHECK SET` and
/// the lean write `IPCHECK.LSET` share, so both keep pins, expire, replicate and notify alike.
pub struct Write<'a, 'v> {
    /// The key.
    pub name: RString<'a>,
    /// The stored value, as `ipcheck_core::encode_view` writes it; the command argument it came
    /// in, if it did, is replicated without a copy.
    pub value: Payload<'v, 'a>,
    /// Whether the value is a manual pin.
    pub manual: bool,
    /// The value's stale window, which the key's lifetime includes.
    pub stale_secs: u32,
    /// When the entry's fresh time ends.
    pub expiry: Expiry,
    /// Replace a manual pin even though this write is not one.
    pub force: bool,
}

impl Write<'_, '_> {
    /// Stores the value (unless a manual pin stands), replicates it, replies `OK` (nil when a pin
    /// was kept).
    pub fn execute(self, ctx: Ctx) -> Result<(), CommandError> {
        let name = &self.name;
        let mut key = ctx.open_key(name, READ | WRITE);
        let held = match key.kind() {
            KeyKind::Empty => 0,
            KeyKind::Other => return Err(CommandError::WrongType),
            KeyKind::String => {
                let old = key.read();
                // A value that does not decode is not a pin: SET replaces it, as plain SET would.
                if !self.force && !self.manual && old.is_some_and(is_manual_pin) {
                    ctx.reply_null();
                    return Ok(());
                }
                old.map_or(0, <[u8]>::len)
            }
        };
        let expire_at = match self.expiry {
            Expiry::After(secs) => {
                Some(clock::now_ms() + (secs + i64::from(self.stale_secs)) * 1000)
            }
            Expiry::Never => None,
        };
        key.write(self.value.bytes(), held)
            .map_err(|_| CommandError::Internal("Redis refused to write the key"))?;
        let expired = match expire_at {
            Some(at) => key.set_expire_at(at),
            // A pin over an entry that had a TTL: cancel it explicitly rather than rely on the
            // write having dropped it.
            None => key.persist(),
        };
        if expired.is_err() {
            // Never leave an entry with the wrong lifetime behind.
            let _ = key.delete();
            return Err(CommandError::Internal("Redis refused to set the expiry"));
        }
        drop(key);
        ctx.signal_modified(name);
        match expire_at {
            Some(at) => ctx.replicate_set(name, self.value, at),
            None => ctx.replicate_set_persistent(name, self.value.bytes()),
        }
        ctx.notify(raw::REDISMODULE_NOTIFY_STRING, c"set", name);
        if expire_at.is_some() {
            ctx.notify(raw::REDISMODULE_NOTIFY_GENERIC, c"expire", name);
        } else {
            ctx.notify(raw::REDISMODULE_NOTIFY_GENERIC, c"persist", name);
        }
        stats::SETS.incr();
        ctx.reply_simple(c"OK");
        Ok(())
    }
}

/// A `REASON` or `SOURCE` argument validated in place by `check` (as `Reasons::parse` and
/// `Source::parse` do). Invalid UTF-8 is refused with the error the lossy text gets, as before.
fn token(bytes: &[u8], check: fn(&str) -> Result<(), TokenError>) -> Result<&str, TokenError> {
    match utf8(bytes) {
        Cow::Borrowed(text) => check(text).map(|()| text),
        // U+FFFD is no token byte, so the check fails; the fallback only keeps this total.
        Cow::Owned(text) => Err(check(&text).err().unwrap_or(TokenError::Invalid(text))),
    }
}

/// Arguments as text for the core parsers (no copy when valid); invalid UTF-8 is replaced by
/// U+FFFD, which no parser accepts, so the error still quotes the argument.
fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    // The plain check first: it is the faster of the two on the valid text every call sends.
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn once<T>(slot: &mut Option<T>, value: T, opt: SetOption) -> Result<(), CommandError> {
    if slot.replace(value).is_some() {
        return Err(CommandError::DuplicateOption(opt.name()));
    }
    Ok(())
}

/// Handler for `IPCHECK|SET`.
pub fn run(ctx: Ctx, args: &Args) -> Result<(), CommandError> {
    Set::parse(args)?.execute(ctx)
}
