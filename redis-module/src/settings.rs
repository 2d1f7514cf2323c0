//! The module's settings: load arguments, their `ipcheck.*` module configs, and the values the
//! handlers read on every call.
//!
//! `MODULE LOAD libipcheck.so default-ttl 3600 ipv6-prefix 56` (or the same after `loadmodule`)
//! is parsed strictly by [`LoadArgs::parse`]: an unknown name, a repeated one, a missing or bad
//! value refuses the load with a log line naming the argument. The parsed values then become the
//! defaults of the module configs `ipcheck.default-ttl`, `ipcheck.ipv4-prefix`,
//! `ipcheck.ipv6-prefix` and `ipcheck.key-prefix`, so `CONFIG GET/SET` (and `ipcheck.*` lines in
//! redis.conf, which win over load arguments) work as for any Redis setting.
//!
//! The numbers are atomics. The key prefix, which `CONFIG SET` can replace between any two
//! commands, is published as a new immutable value that is never freed (see [`crate::prefix`]),
//! so nothing ever borrows from a prefix that a later `CONFIG SET` frees.

use std::os::raw::{c_char, c_int, c_longlong, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, Ordering};

use ipcheck_core::{Aggregation, AggregationError};
use redis_module::raw;
use thiserror::Error;

use crate::ffi::{api, string_bytes, Ctx};
pub use crate::prefix::KeyPrefix;

/// Longest `EX` (and default TTL): one year.
pub const MAX_TTL: i64 = 31_536_000;
/// The default TTL when neither `EX` nor `default-ttl` says otherwise: one day.
pub const DEFAULT_TTL: i64 = 86_400;
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "ipcheck:";
/// Longest key prefix; keeps every key within the handlers' fixed-size key buffer.
pub const MAX_PREFIX_LEN: usize = 64;

static TTL: AtomicI64 = AtomicI64::new(DEFAULT_TTL);
static V4_PREFIX: AtomicI64 = AtomicI64::new(32);
static V6_PREFIX: AtomicI64 = AtomicI64::new(64);
/// The same prefix as the retained `RedisModuleString` that Redis's config getter must return;
/// only the config callbacks touch it (see [`get_prefix`]).
static PREFIX_STRING: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());
static CLUSTER: AtomicBool = AtomicBool::new(false);

/// The TTL applied by `IPCHECK SET` without `EX`, in seconds.
pub fn default_ttl() -> i64 {
    TTL.load(Ordering::Relaxed)
}

/// The aggregation prefixes in force.
pub fn aggregation() -> Result<Aggregation, AggregationError> {
    let v4 = V4_PREFIX.load(Ordering::Relaxed);
    let v6 = V6_PREFIX.load(Ordering::Relaxed);
    Aggregation::new(u8::try_from(v4).unwrap_or(0), u8::try_from(v6).unwrap_or(0))
}

/// The key prefix in force.
///
/// A `'static` borrow: `CONFIG SET ipcheck.key-prefix` publishes a new prefix rather than
/// changing the one in force, so a caller keeps reading the prefix it got even if a setter runs
/// meanwhile, with no lock and no copy (see [`crate::prefix`]).
pub fn key_prefix() -> &'static KeyPrefix {
    crate::prefix::current()
}

/// Whether the server runs in cluster mode (fixed for the life of the process).
pub fn cluster_mode() -> bool {
    CLUSTER.load(Ordering::Relaxed)
}

/// Records cluster mode, read once at load from the context flags.
pub fn set_cluster_mode(on: bool) {
    CLUSTER.store(on, Ordering::Relaxed);
}

/// A refused load argument; the message names the argument and says why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadArgError {
    /// A name that is not one of the four settings.
    #[error(
        "unknown argument '{0}' (expected default-ttl, ipv4-prefix, ipv6-prefix or key-prefix)"
    )]
    Unknown(String),
    /// A name given twice.
    #[error("argument '{0}' given more than once")]
    Duplicate(&'static str),
    /// A name with no value after it.
    #[error("argument '{0}' needs a value")]
    MissingValue(&'static str),
    /// A value out of range or malformed.
    #[error("argument '{name}': {why}")]
    Invalid {
        /// The argument name.
        name: &'static str,
        /// What is wrong with its value.
        why: String,
    },
}

/// The parsed load arguments (defaults for anything not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadArgs {
    /// `default-ttl`, seconds, 1..=31536000.
    pub default_ttl: i64,
    /// `ipv4-prefix`, 16..=32.
    pub ipv4_prefix: u8,
    /// `ipv6-prefix`, 32..=128.
    pub ipv6_prefix: u8,
    /// `key-prefix`, see [`check_prefix`].
    pub key_prefix: String,
}

impl Default for LoadArgs {
    fn default() -> Self {
        LoadArgs {
            default_ttl: DEFAULT_TTL,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            key_prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

const NAMES: [&str; 4] = ["default-ttl", "ipv4-prefix", "ipv6-prefix", "key-prefix"];

impl LoadArgs {
    /// Parses `name value` pairs; names are case-insensitive.
    pub fn parse(args: &[&[u8]]) -> Result<LoadArgs, LoadArgError> {
        let mut out = LoadArgs::default();
        let mut seen = [false; NAMES.len()];
        let mut it = args.iter();
        while let Some(raw_name) = it.next() {
            let idx = NAMES
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(raw_name))
                .ok_or_else(|| LoadArgError::Unknown(String::from_utf8_lossy(raw_name).into()))?;
            let name = NAMES[idx];
            if std::mem::replace(&mut seen[idx], true) {
                return Err(LoadArgError::Duplicate(name));
            }
            let value = it.next().ok_or(LoadArgError::MissingValue(name))?;
            let invalid = |why: String| LoadArgError::Invalid { name, why };
            match idx {
                0 => out.default_ttl = parse_int(value, 1, MAX_TTL).map_err(invalid)?,
                1 => out.ipv4_prefix = parse_int(value, 16, 32).map_err(invalid)? as u8,
                2 => out.ipv6_prefix = parse_int(value, 32, 128).map_err(invalid)? as u8,
                _ => {
                    let text = std::str::from_utf8(value)
                        .map_err(|_| invalid("not valid UTF-8".to_owned()))?;
                    check_prefix(text).map_err(invalid)?;
                    out.key_prefix = text.to_owned();
                }
            }
        }
        Ok(out)
    }
}

/// A strict decimal integer in `min..=max`: no sign, no leading zeros, as Redis parses integers.
pub fn parse_int(value: &[u8], min: i64, max: i64) -> Result<i64, String> {
    let digits = !value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit);
    if !digits || (value.len() > 1 && value[0] == b'0') {
        return Err(format!(
            "'{}' is not an integer",
            String::from_utf8_lossy(value)
        ));
    }
    // Only ASCII digits, at most 18 of them: always fits in i64.
    let n = value
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    if n < min || n > max {
        return Err(format!("{n} is out of range {min}..{max}"));
    }
    Ok(n)
}

/// A key prefix: 1 to 64 printable ASCII bytes, no spaces, no `{`/`}` (they would break the
/// cluster hash tag the module adds around the address), and at least one byte that never occurs
/// in address text (anything but hex digits and `:.[]/%`), so that no key is also an address;
/// the command filter relies on that to tell them apart.
pub fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("key prefix must not be empty".to_owned());
    }
    if p.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "key prefix is {} bytes, at most {MAX_PREFIX_LEN} allowed",
            p.len()
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '{' || *c == '}')
    {
        return Err(format!(
            "key prefix must be printable ASCII without spaces or braces, found {c:?}"
        ));
    }
    if p.bytes()
        .all(|b| b.is_ascii_hexdigit() || b":.[]/%".contains(&b))
    {
        return Err(
            "key prefix must contain a character that cannot appear in an IP address \
             (e.g. a letter after f), so keys never look like addresses"
                .to_owned(),
        );
    }
    Ok(())
}

/// Applies parsed load arguments, then registers the `ipcheck.*` configs with them as defaults
/// and lets Redis apply any `ipcheck.*` lines from its config file.
pub fn install(ctx: Ctx, args: &LoadArgs) -> Result<(), String> {
    TTL.store(args.default_ttl, Ordering::Relaxed);
    V4_PREFIX.store(i64::from(args.ipv4_prefix), Ordering::Relaxed);
    V6_PREFIX.store(i64::from(args.ipv6_prefix), Ordering::Relaxed);
    register_numeric(ctx, c"default-ttl", &TTL, args.default_ttl, 1, MAX_TTL)?;
    register_numeric(
        ctx,
        c"ipv4-prefix",
        &V4_PREFIX,
        args.ipv4_prefix.into(),
        16,
        32,
    )?;
    register_numeric(
        ctx,
        c"ipv6-prefix",
        &V6_PREFIX,
        args.ipv6_prefix.into(),
        32,
        128,
    )?;
    let default = std::ffi::CString::new(args.key_prefix.as_str())
        .map_err(|_| "key-prefix contains a NUL byte".to_owned())?;
    // SAFETY: valid load ctx; name and default are NUL-terminated and copied by Redis.
    let rc = unsafe {
        api!(RedisModule_RegisterStringConfig)(
            ctx.as_ptr(),
            c"key-prefix".as_ptr(),
            default.as_ptr(),
            raw::REDISMODULE_CONFIG_DEFAULT,
            Some(get_prefix),
            Some(set_prefix),
            None,
            ptr::null_mut(),
        )
    };
    if rc != raw::REDISMODULE_OK as c_int {
        return Err("cannot register config ipcheck.key-prefix".to_owned());
    }
    // SAFETY: valid load ctx, called once after every config is registered.
    if unsafe { api!(RedisModule_LoadConfigs)(ctx.as_ptr()) } != raw::REDISMODULE_OK as c_int {
        return Err("an ipcheck.* setting in the server config was refused".to_owned());
    }
    Ok(())
}

fn register_numeric(
    ctx: Ctx,
    name: &'static std::ffi::CStr,
    cell: &'static AtomicI64,
    default: i64,
    min: i64,
    max: i64,
) -> Result<(), String> {
    // SAFETY: valid load ctx; privdata points at a static that outlives the module.
    let rc = unsafe {
        api!(RedisModule_RegisterNumericConfig)(
            ctx.as_ptr(),
            name.as_ptr(),
            default,
            raw::REDISMODULE_CONFIG_DEFAULT,
            min,
            max,
            Some(get_numeric),
            Some(set_numeric),
            None,
            ptr::from_ref(cell).cast_mut().cast::<c_void>(),
        )
    };
    if rc == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!(
            "cannot register config ipcheck.{}",
            name.to_string_lossy()
        ))
    }
}

/// Config getter for the numeric settings.
///
/// # Safety
/// `privdata` is the pointer registered with the config: one of the static `AtomicI64` cells.
unsafe extern "C" fn get_numeric(_name: *const c_char, privdata: *mut c_void) -> c_longlong {
    // SAFETY: per the function contract.
    let cell = unsafe { &*privdata.cast::<AtomicI64>() };
    cell.load(Ordering::Relaxed)
}

/// Config setter for the numeric settings.
///
/// # Safety
/// As for [`get_numeric`].
unsafe extern "C" fn set_numeric(
    _name: *const c_char,
    value: c_longlong,
    privdata: *mut c_void,
    _err: *mut *mut raw::RedisModuleString,
) -> c_int {
    // Redis has already checked the registered min..max range.
    // SAFETY: per the function contract.
    let cell = unsafe { &*privdata.cast::<AtomicI64>() };
    cell.store(value, Ordering::Relaxed);
    crate::keys::forget_trusted();
    raw::REDISMODULE_OK as c_int
}

/// Config getter for `ipcheck.key-prefix`.
///
/// Redis does not free what the getter returns, so this hands back the retained string itself,
/// which Redis copies before `CONFIG GET` (or `CONFIG REWRITE`, or a `CONFIG SET` rollback) goes
/// on. That is sound because Redis never runs a config getter and setter at the same time:
/// both run only inside `CONFIG` (or at load) on its main thread, so the string [`set_prefix`]
/// frees is never one a getter handed out and Redis has not copied yet. This is the one place
/// that relies on that; keys are built from [`key_prefix`], never from this string.
extern "C" fn get_prefix(
    _name: *const c_char,
    _privdata: *mut c_void,
) -> *mut raw::RedisModuleString {
    PREFIX_STRING.load(Ordering::Acquire)
}

/// Config setter for `ipcheck.key-prefix`: checks the value, then stores a copy for the key
/// builders and retains Redis's string for [`get_prefix`].
///
/// # Safety
/// `value` is a live string and `err` a valid out-pointer, as Redis passes them to a setter.
unsafe extern "C" fn set_prefix(
    _name: *const c_char,
    value: *mut raw::RedisModuleString,
    _privdata: *mut c_void,
    err: *mut *mut raw::RedisModuleString,
) -> c_int {
    // SAFETY: Redis passes a live string for the duration of the callback.
    let bytes = unsafe { string_bytes(value) };
    let checked = std::str::from_utf8(bytes)
        .map_err(|_| "key prefix must be printable ASCII".to_owned())
        .and_then(check_prefix)
        .and_then(|()| KeyPrefix::new(bytes).ok_or_else(|| "key prefix is too long".to_owned()));
    let prefix = match checked {
        Ok(prefix) => prefix,
        Err(why) => {
            // SAFETY: Redis takes ownership of the error string.
            unsafe {
                *err = api!(RedisModule_CreateString)(
                    ptr::null_mut(),
                    why.as_ptr().cast::<c_char>(),
                    why.len(),
                );
            }
            return raw::REDISMODULE_ERR as c_int;
        }
    };
    crate::prefix::publish(prefix);
    crate::keys::forget_trusted();
    // SAFETY: keep Redis's string alive past this call for the getter, and release the one it
    // replaces (see get_prefix for why no getter's caller can still be reading it).
    unsafe { api!(RedisModule_RetainString)(ptr::null_mut(), value) };
    let old = PREFIX_STRING.swap(value, Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: retained by a previous call to this function.
        unsafe { api!(RedisModule_FreeString)(ptr::null_mut(), old) };
    }
    raw::REDISMODULE_OK as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<LoadArgs, LoadArgError> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        LoadArgs::parse(&bytes)
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(&[]), Ok(LoadArgs::default()));
    }

    #[test]
    fn all_arguments_any_case() {
        let a = parse(&[
            "DEFAULT-TTL",
            "60",
            "ipv4-prefix",
            "24",
            "ipv6-prefix",
            "48",
            "key-prefix",
            "ipc:",
        ])
        .unwrap();
        assert_eq!(
            a,
            LoadArgs {
                default_ttl: 60,
                ipv4_prefix: 24,
                ipv6_prefix: 48,
                key_prefix: "ipc:".into()
            }
        );
    }

    #[test]
    fn refusals_name_the_argument() {
        for (args, needle) in [
            (&["ttl", "5"][..], "unknown argument 'ttl'"),
            (&["default-ttl"][..], "'default-ttl' needs a value"),
            (
                &["default-ttl", "0"][..],
                "'default-ttl': 0 is out of range",
            ),
            (&["default-ttl", "31536001"][..], "out of range"),
            (&["default-ttl", "-5"][..], "'-5' is not an integer"),
            (&["default-ttl", "010"][..], "not an integer"),
            (
                &["ipv4-prefix", "8"][..],
                "'ipv4-prefix': 8 is out of range 16..32",
            ),
            (&["ipv6-prefix", "129"][..], "'ipv6-prefix'"),
            (&["key-prefix", ""][..], "must not be empty"),
            (&["key-prefix", "a b"][..], "'key-prefix'"),
            (&["key-prefix", "a{b"][..], "braces"),
            (
                &["ipv4-prefix", "24", "ipv4-prefix", "24"][..],
                "more than once",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(check_prefix(&"p".repeat(65)).is_err());
        assert!(check_prefix(&"p".repeat(64)).is_ok());
        for ambiguous in ["1", "2001:db8::", "fe80:", "a.b/"] {
            assert!(check_prefix(ambiguous).is_err(), "{ambiguous}");
        }
        assert!(check_prefix("ipcheck:").is_ok());
    }
}
