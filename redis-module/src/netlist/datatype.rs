//! The `ipchk-net` module data type that holds one [`NetList`] per key: registration and the
//! callbacks Redis calls to save, load, rewrite the AOF, measure, copy and free a list.
//!
//! Every callback runs under `catch_unwind`: a bug must not abort Redis. A corrupt RDB record
//! makes `rdb_load` return null, which Redis reports as a failed load (it then stops loading, as
//! for any corrupt RDB) instead of the module building a list from bad data.

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;

use crate::clock;
use crate::ffi::{api, Ctx};

use super::record::{self, ENCODING_VERSION};
use super::table::NetList;

/// Redis requires exactly 9 characters; the name is stored in every RDB with a list in it, so
/// it must never change.
const TYPE_NAME: &std::ffi::CStr = c"ipchk-net";

static TYPE: AtomicPtr<raw::RedisModuleType> = AtomicPtr::new(ptr::null_mut());

/// The registered type (null before [`register`] ran, which happens in `OnLoad`).
pub fn net_type() -> *mut raw::RedisModuleType {
    TYPE.load(Ordering::Relaxed)
}

/// Registers the data type; must run in `OnLoad`.
pub fn register(ctx: Ctx) -> Result<(), String> {
    // SAFETY: all-zero is "no callback" for every optional method.
    let mut methods: raw::RedisModuleTypeMethods = unsafe { std::mem::zeroed() };
    // Version 3 has `copy`, which Redis 7.0 knows; later fields stay unset.
    methods.version = 3;
    methods.rdb_load = Some(rdb_load);
    methods.rdb_save = Some(rdb_save);
    methods.aof_rewrite = Some(aof_rewrite);
    methods.mem_usage = Some(mem_usage);
    methods.free = Some(free);
    methods.copy = Some(copy);
    // SAFETY: load ctx; Redis copies the methods struct and the name.
    let ty = unsafe {
        api!(RedisModule_CreateDataType)(
            ctx.as_ptr(),
            TYPE_NAME.as_ptr(),
            ENCODING_VERSION,
            &mut methods,
        )
    };
    if ty.is_null() {
        return Err("cannot create the ipchk-net data type (name taken?)".to_owned());
    }
    TYPE.store(ty, Ordering::Relaxed);
    Ok(())
}

/// Moves a list into a raw value pointer for Redis to own.
pub fn into_raw(list: NetList) -> *mut c_void {
    Box::into_raw(Box::new(list)).cast()
}

/// Runs a callback body; a panic is logged and becomes `fallback`.
fn guarded<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            let why = crate::bugs::panic_message(payload.as_ref());
            crate::log_warning(None, &format!("bug in network list {what}: {why}"));
            fallback
        }
    }
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guarded("rdb_load", ptr::null_mut(), || {
        if encver != ENCODING_VERSION {
            crate::log_warning(
                None,
                &format!("network list saved with encoding {encver}; this module reads {ENCODING_VERSION}: upgrade the module"),
            );
            return ptr::null_mut();
        }
        // SAFETY: the IO handle Redis passed to this callback.
        match unsafe { load(rdb) } {
            Ok(list) => into_raw(list),
            Err(why) => {
                crate::log_warning(None, &format!("cannot load a network list: {why}"));
                ptr::null_mut()
            }
        }
    })
}

/// Reads a count then that many records; expired networks are dropped on the way in.
///
/// # Safety
/// `rdb` is the IO handle of a running `rdb_load`.
unsafe fn load(rdb: *mut raw::RedisModuleIO) -> Result<NetList, String> {
    let now = clock::now_ms();
    // SAFETY: per the function contract.
    let count = unsafe { api!(RedisModule_LoadUnsigned)(rdb) };
    if io_error(rdb) {
        return Err("short read of the count".into());
    }
    let mut list = NetList::new();
    for _ in 0..count {
        let mut len = 0usize;
        // SAFETY: per the function contract; a non-null buffer is ours to free.
        let buf = unsafe { api!(RedisModule_LoadStringBuffer)(rdb, &mut len) };
        if buf.is_null() || io_error(rdb) {
            if !buf.is_null() {
                // SAFETY: allocated by Redis for us.
                unsafe { api!(RedisModule_Free)(buf.cast()) };
            }
            return Err("short read of a record".into());
        }
        // SAFETY: Redis returned `len` readable bytes at `buf`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        let decoded = record::decode(bytes);
        // SAFETY: allocated by Redis for us; `bytes` is not used after this.
        unsafe { api!(RedisModule_Free)(buf.cast()) };
        let (net, item) = decoded.map_err(|e| e.to_string())?;
        if item.live(now) {
            list.insert(net, item);
        }
    }
    list.compact();
    Ok(list)
}

/// Whether Redis flagged an IO error (only reported when the module handles IO errors; without
/// that option Redis stops the load itself on a short read).
fn io_error(rdb: *mut raw::RedisModuleIO) -> bool {
    // SAFETY: copying a pointer from the table RedisModule_Init filled in.
    match unsafe { raw::RedisModule_IsIOError } {
        // SAFETY: the IO handle of the running callback.
        Some(f) => (unsafe { f(rdb) }) != 0,
        None => false,
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guarded("rdb_save", (), || {
        // SAFETY: Redis passes a value this type created.
        let list = unsafe { &*value.cast::<NetList>() };
        let now = clock::now_ms();
        let count = list.live(now).count();
        let mut buf = Vec::with_capacity(64);
        // SAFETY: the IO handle Redis passed; buffers are copied by Redis.
        unsafe {
            api!(RedisModule_SaveUnsigned)(rdb, count as u64);
            // The same `now`, so exactly `count` records follow.
            for (net, item) in list.live(now) {
                record::encode(&net, item, &mut buf);
                api!(RedisModule_SaveStringBuffer)(rdb, buf.as_ptr().cast::<c_char>(), buf.len());
            }
        }
    })
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    guarded("aof_rewrite", (), || {
        // SAFETY: Redis passes a value this type created.
        let list = unsafe { &*value.cast::<NetList>() };
        for (net, item) in list.live(clock::now_ms()) {
            let text = format!("{net}\0");
            // SAFETY: the IO handle Redis passed; "s" a RedisModuleString, "c" C strings,
            // "b" (ptr, len), "l" a long long; Redis copies them all.
            unsafe {
                if item.expires_at == 0 {
                    api!(RedisModule_EmitAOF)(
                        aof,
                        c"IPCHECK".as_ptr(),
                        c"csccb".as_ptr(),
                        c"NETADD".as_ptr(),
                        key,
                        text.as_ptr().cast::<c_char>(),
                        c"VALUE".as_ptr(),
                        item.value.as_ptr().cast::<c_char>(),
                        item.value.len(),
                    );
                } else {
                    api!(RedisModule_EmitAOF)(
                        aof,
                        c"IPCHECK".as_ptr(),
                        c"csccbcl".as_ptr(),
                        c"NETADD".as_ptr(),
                        key,
                        text.as_ptr().cast::<c_char>(),
                        c"VALUE".as_ptr(),
                        item.value.as_ptr().cast::<c_char>(),
                        item.value.len(),
                        c"PXAT".as_ptr(),
                        item.expires_at as std::os::raw::c_longlong,
                    );
                }
            }
        }
    })
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    guarded("mem_usage", 0, || {
        // SAFETY: Redis passes a value this type created.
        unsafe { &*value.cast::<NetList>() }.memory()
    })
}

unsafe extern "C" fn free(value: *mut c_void) {
    guarded("free", (), || {
        if !value.is_null() {
            // SAFETY: created by `into_raw` and freed only here, once.
            drop(unsafe { Box::from_raw(value.cast::<NetList>()) });
        }
    })
}

unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guarded("copy", ptr::null_mut(), || {
        // SAFETY: Redis passes a value this type created.
        into_raw(unsafe { &*value.cast::<NetList>() }.clone())
    })
}
