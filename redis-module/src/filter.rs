//! The command filter that hands Redis the real key of `IPCHECK GET|SET|DEL <address>`.
//!
//! Redis matches ACL key patterns and computes cluster slots from the declared key argument,
//! which for `IPCHECK` is the address text, not the key `ipcheck:<canonical>` it maps to. A
//! command filter runs before both checks (for clients, `MULTI` queues and scripts alike), so
//! rewriting the argument to the key makes a rule like `%R~ipcheck:*` mean what it says, and
//! makes Redis enforce it on the real key. `COMMAND GETKEYS IPCHECK GET 192.0.2.1` is not an
//! `IPCHECK` call, so it still names the address argument a cluster client routes by; in cluster
//! mode the key carries that address as its hash tag, so both give the same slot.
//!
//! Arguments that do not normalize (or are not canonical in cluster mode) are left alone; the
//! handler then replies with the precise error.

use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use redis_module::raw;

use crate::bugs::{self, Site};
use crate::ffi::{api, string_bytes, Ctx};
use crate::keys::{key_for, remember_trusted, Routing};
use crate::settings;

/// Registers the filter; call once at load.
pub fn register(ctx: Ctx) -> Result<(), String> {
    // SAFETY: load ctx; the callback is a plain function that lives as long as the module.
    let f = unsafe { api!(RedisModule_RegisterCommandFilter)(ctx.as_ptr(), Some(on_command), 0) };
    if f.is_null() {
        return Err("cannot register the IPCHECK command filter".to_owned());
    }
    Ok(())
}

unsafe extern "C" fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    // Runs for every command the server executes, so it bails out after one comparison for
    // anything that is not IPCHECK, and never lets a panic escape into Redis. A caught panic
    // leaves the command as it came (the handler then checks ACLs on the real key itself), and
    // is counted and logged rather than hidden.
    // SAFETY: Redis passes a filter context valid for this callback.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| unsafe { rewrite(fctx) })) {
        bugs::report(Site::Filter, None, &bugs::panic_message(payload.as_ref()));
    }
}

/// Rewrites the address argument of `IPCHECK GET|SET|DEL` to its key.
///
/// # Safety
/// `fctx` is the filter context Redis passed to the running filter callback.
unsafe fn rewrite(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    // SAFETY: fctx is valid for the duration of the callback; argument strings belong to it.
    unsafe {
        if api!(RedisModule_CommandFilterArgsCount)(fctx) < 3 {
            return;
        }
        let arg = |i: c_int| string_bytes(api!(RedisModule_CommandFilterArgGet)(fctx, i));
        if !arg(0).eq_ignore_ascii_case(b"ipcheck") {
            return;
        }
        let sub = arg(1);
        if ![&b"get"[..], b"set", b"del"]
            .iter()
            .any(|s| sub.eq_ignore_ascii_case(s))
        {
            return;
        }
        let given = arg(2);
        // Already the key (no address starts with the prefix): nothing to rewrite, and no
        // refused normalization to build an error for.
        if given.starts_with(settings::key_prefix().as_bytes()) {
            return;
        }
        let Ok(key) = key_for(given, Routing::Strict) else {
            return;
        };
        let bytes = key.as_bytes();
        // The filter context takes ownership of the new string.
        let s = api!(RedisModule_CreateString)(
            ptr::null_mut(),
            bytes.as_ptr().cast::<c_char>(),
            bytes.len(),
        );
        api!(RedisModule_CommandFilterArgReplace)(fctx, 2, s);
        remember_trusted(key);
    }
}
