//! Thin, allocation-free wrappers over the raw Redis module API used by the handlers.
//!
//! The hot path (`IPCHECK GET`/`SET`) talks to the keyspace directly through the low-level key API
//! (`OpenKey`, `StringDMA`, `SetAbsExpire`, ...) rather than `RedisModule_Call`, which would build
//! a fake client and parse a reply per call. Every resource is an RAII guard, so an early return
//! or a caught panic still closes keys and frees strings.
//!
//! Every API used here exists in Redis 7.0; [`missing_api`] is checked once at load so the
//! `expect`s below can only fire if Redis lied to us at `OnLoad`.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_long, c_longlong};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;

/// Calls a Redis module API function pointer that [`missing_api`] proved present at load.
macro_rules! api {
    ($name:ident) => {{
        // SAFETY: the pointer tables are written once by RedisModule_Init before any
        // command runs. (Callers are often inside `unsafe` already.)
        #[allow(unused_unsafe)]
        let f = unsafe { raw::$name };
        f.expect(concat!(stringify!($name), " checked at load"))
    }};
}
pub(crate) use api;

/// The first module API this module needs that the running Redis does not export, if any.
pub fn missing_api() -> Option<&'static str> {
    macro_rules! first_missing {
        ($($name:ident),* $(,)?) => {{
            $(
                // SAFETY: copying a pointer from the table RedisModule_Init filled in.
                let f = unsafe { raw::$name };
                if f.is_none() {
                    return Some(stringify!($name));
                }
            )*
            None
        }};
    }
    first_missing!(
        RedisModule_CreateCommand,
        RedisModule_GetCommand,
        RedisModule_CreateSubcommand,
        RedisModule_SetCommandInfo,
        RedisModule_OpenKey,
        RedisModule_CloseKey,
        RedisModule_KeyType,
        RedisModule_StringDMA,
        RedisModule_StringTruncate,
        RedisModule_GetAbsExpire,
        RedisModule_SetAbsExpire,
        RedisModule_DeleteKey,
        RedisModule_Milliseconds,
        RedisModule_Replicate,
        RedisModule_CreateString,
        RedisModule_FreeString,
        RedisModule_StringPtrLen,
        RedisModule_ReplyWithArray,
        RedisModule_ReplyWithStringBuffer,
        RedisModule_ReplyWithSimpleString,
        RedisModule_ReplyWithLongLong,
        RedisModule_ReplyWithNull,
        RedisModule_ReplyWithError,
        RedisModule_NotifyKeyspaceEvent,
        RedisModule_GetContextFlags,
        RedisModule_GetCurrentUserName,
        RedisModule_GetModuleUserFromUserName,
        RedisModule_FreeModuleUser,
        RedisModule_ACLCheckKeyPermissions,
        RedisModule_RegisterNumericConfig,
        RedisModule_RegisterStringConfig,
        RedisModule_LoadConfigs,
        RedisModule_RetainString,
        RedisModule_SetModuleOptions,
        RedisModule_SignalModifiedKey,
        RedisModule_RegisterCommandFilter,
        RedisModule_CommandFilterArgsCount,
        RedisModule_CommandFilterArgGet,
        RedisModule_CommandFilterArgReplace,
        // Network lists (the `ipchk-net` data type and the NET* subcommands).
        RedisModule_CreateDataType,
        RedisModule_ModuleTypeGetType,
        RedisModule_ModuleTypeGetValue,
        RedisModule_ModuleTypeSetValue,
        RedisModule_SaveUnsigned,
        RedisModule_LoadUnsigned,
        RedisModule_SaveStringBuffer,
        RedisModule_LoadStringBuffer,
        RedisModule_Free,
        RedisModule_EmitAOF,
        RedisModule_ReplicateVerbatim,
    )
}

/// Open a key for reading.
pub const READ: c_int = raw::REDISMODULE_READ as c_int;
/// Open a key for writing.
pub const WRITE: c_int = raw::REDISMODULE_WRITE as c_int;

/// The context pointer Redis handed to one callback (a command handler or `OnLoad`), valid for
/// the lifetime `'a`.
///
/// Every method below passes the pointer to Redis, so a `Ctx` must never exist for a pointer
/// that is not a live context: the only way to build one is the `unsafe` [`Ctx::new`], and the
/// lifetime keeps safe code from keeping a copy after the callback returns (a handler is
/// generic over `'a`, so it cannot store its `Ctx` anywhere that outlives the call).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    ptr: *mut raw::RedisModuleCtx,
    call: PhantomData<&'a raw::RedisModuleCtx>,
}

impl<'a> Ctx<'a> {
    /// Wraps the pointer Redis passed to a handler or `OnLoad`.
    ///
    /// # Safety
    /// `ptr` is the `RedisModuleCtx` Redis handed to the callback that is running now, and `'a`
    /// ends before that callback returns (Redis frees or reuses the context afterwards).
    pub unsafe fn new(ptr: *mut raw::RedisModuleCtx) -> Self {
        Ctx {
            ptr,
            call: PhantomData,
        }
    }

    /// The raw pointer, for calls not wrapped here.
    pub fn as_ptr(self) -> *mut raw::RedisModuleCtx {
        self.ptr
    }

    /// Replies with a simple string such as `OK`.
    pub fn reply_simple(self, msg: &CStr) {
        // SAFETY: valid ctx during the handler; msg is NUL-terminated.
        unsafe { api!(RedisModule_ReplyWithSimpleString)(self.ptr, msg.as_ptr()) };
    }

    /// Replies with a bulk string (binary safe).
    pub fn reply_bulk(self, bytes: &[u8]) {
        // SAFETY: Redis copies `len` bytes from the pointer.
        unsafe {
            api!(RedisModule_ReplyWithStringBuffer)(
                self.ptr,
                bytes.as_ptr().cast::<c_char>(),
                bytes.len(),
            )
        };
    }

    /// Replies with an integer.
    pub fn reply_int(self, n: i64) {
        // SAFETY: valid ctx.
        unsafe { api!(RedisModule_ReplyWithLongLong)(self.ptr, n as c_longlong) };
    }

    /// Replies with nil (RESP2 null bulk, RESP3 null).
    pub fn reply_null(self) {
        // SAFETY: valid ctx.
        unsafe { api!(RedisModule_ReplyWithNull)(self.ptr) };
    }

    /// Starts an array reply of `len` elements; the caller emits exactly that many next.
    pub fn reply_array(self, len: usize) {
        // SAFETY: valid ctx.
        unsafe { api!(RedisModule_ReplyWithArray)(self.ptr, len as c_long) };
    }

    /// Replies with an error; `msg` starts with its code (`ERR ...`, `WRONGTYPE ...`).
    pub fn reply_error(self, msg: &CStr) {
        // SAFETY: valid ctx; Redis copies the message (and turns stray newlines into spaces).
        unsafe { api!(RedisModule_ReplyWithError)(self.ptr, msg.as_ptr()) };
    }

    /// A Redis string owned by this context, freed when the guard drops.
    pub fn create_string(self, bytes: &[u8]) -> RString<'a> {
        // SAFETY: Redis copies `len` bytes.
        let ptr = unsafe {
            api!(RedisModule_CreateString)(self.ptr, bytes.as_ptr().cast::<c_char>(), bytes.len())
        };
        RString {
            owner: Some(self),
            ptr,
            call: PhantomData,
        }
    }

    /// Opens `name` with `mode` ([`READ`], [`READ`]` | `[`WRITE`]); closed when the guard drops.
    pub fn open_key(self, name: &RString, mode: c_int) -> Key<'a> {
        // SAFETY: valid ctx and key name for the duration of the call.
        let ptr = unsafe { api!(RedisModule_OpenKey)(self.ptr, name.ptr, mode) };
        Key {
            ptr,
            call: PhantomData,
        }
    }

    /// Sends `SET <key> <value> PXAT <ms>` to replicas and the AOF in place of this command, so a
    /// replay never restarts the TTL.
    ///
    /// Redis builds every argument as an object even when nothing is propagated (no replica, no
    /// AOF), so the form is the one with the fewest allocations: `PXAT` is one retained string
    /// ("s" only takes a reference; "c" would copy it), the time is formatted here and passed as
    /// a buffer ("b": one allocation; "l" makes two, a string and its object), and a value that
    /// is a command argument is retained rather than copied.
    pub fn replicate_set(self, key: &RString, value: Payload, expire_at_ms: i64) {
        let mut digits = itoa::Buffer::new();
        let at = digits.format(expire_at_ms.unsigned_abs()).as_bytes();
        let pxat = shared_pxat();
        // SAFETY: "s" takes a RedisModuleString (retained, not copied), "b" (ptr, len), "c" a C
        // string, "l" a long long; Redis copies or retains them all.
        unsafe {
            match value {
                Payload::Bytes(value) if pxat.is_null() || expire_at_ms < 0 => {
                    api!(RedisModule_Replicate)(
                        self.ptr,
                        c"SET".as_ptr(),
                        c"sbcl".as_ptr(),
                        key.as_ptr(),
                        value.as_ptr().cast::<c_char>(),
                        value.len(),
                        c"PXAT".as_ptr(),
                        expire_at_ms as c_longlong,
                    )
                }
                Payload::String(value, _) if pxat.is_null() || expire_at_ms < 0 => {
                    api!(RedisModule_Replicate)(
                        self.ptr,
                        c"SET".as_ptr(),
                        c"sscl".as_ptr(),
                        key.as_ptr(),
                        value.as_ptr(),
                        c"PXAT".as_ptr(),
                        expire_at_ms as c_longlong,
                    )
                }
                Payload::Bytes(value) => api!(RedisModule_Replicate)(
                    self.ptr,
                    c"SET".as_ptr(),
                    c"sbsb".as_ptr(),
                    key.as_ptr(),
                    value.as_ptr().cast::<c_char>(),
                    value.len(),
                    pxat,
                    at.as_ptr().cast::<c_char>(),
                    at.len(),
                ),
                Payload::String(value, _) => api!(RedisModule_Replicate)(
                    self.ptr,
                    c"SET".as_ptr(),
                    c"sssb".as_ptr(),
                    key.as_ptr(),
                    value.as_ptr(),
                    pxat,
                    at.as_ptr().cast::<c_char>(),
                    at.len(),
                ),
            }
        };
    }

    /// Sends `SET <key> <value>` (no expiry: a plain SET clears any TTL) to replicas and the AOF.
    pub fn replicate_set_persistent(self, key: &RString, value: &[u8]) {
        // SAFETY: as in replicate_set.
        unsafe {
            api!(RedisModule_Replicate)(
                self.ptr,
                c"SET".as_ptr(),
                c"sb".as_ptr(),
                key.as_ptr(),
                value.as_ptr().cast::<c_char>(),
                value.len(),
            )
        };
    }

    /// Sends `DEL <key>` to replicas and the AOF.
    pub fn replicate_del(self, key: &RString) {
        // SAFETY: as in replicate_set.
        unsafe {
            api!(RedisModule_Replicate)(self.ptr, c"DEL".as_ptr(), c"s".as_ptr(), key.as_ptr())
        };
    }

    /// Tells Redis the key changed (invalidates `WATCH` and client-side caching). The module
    /// signals only real changes: implicit signalling on every write-mode open is switched off
    /// at load, so a SET that keeps a manual pin does not abort anyone's transaction.
    pub fn signal_modified(self, key: &RString) {
        // SAFETY: valid ctx and key.
        unsafe { api!(RedisModule_SignalModifiedKey)(self.ptr, key.ptr) };
    }

    /// Switches off Redis's implicit "key modified" signal on closing a write-mode key.
    pub fn signal_modified_keys_explicitly(self) {
        // SAFETY: valid load ctx.
        unsafe {
            api!(RedisModule_SetModuleOptions)(
                self.ptr,
                raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED as c_int,
            )
        };
    }

    /// Fires a keyspace notification, as the equivalent core command would.
    pub fn notify(self, class: c_int, event: &CStr, key: &RString) {
        // SAFETY: valid ctx and key; Redis returns early when notifications are off.
        unsafe { api!(RedisModule_NotifyKeyspaceEvent)(self.ptr, class, event.as_ptr(), key.ptr) };
    }

    /// The context flags (`REDISMODULE_CTX_FLAGS_*`).
    pub fn flags(self) -> c_int {
        // SAFETY: valid ctx.
        unsafe { api!(RedisModule_GetContextFlags)(self.ptr) }
    }
}

/// A value to store and replicate: bytes (Redis copies them to replicate), or a Redis string
/// with its bytes (retained, not copied).
#[derive(Clone, Copy)]
pub enum Payload<'v, 'a> {
    /// Bytes built by the module.
    Bytes(&'v [u8]),
    /// A string Redis already holds, such as a command argument, and its bytes.
    String(&'v RString<'a>, &'v [u8]),
}

impl Payload<'_, '_> {
    /// The value's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(bytes) | Payload::String(_, bytes) => bytes,
        }
    }
}

/// A `RedisModuleString` used during one callback `'a`: one this module created (freed on
/// drop) or a command argument.
pub struct RString<'a> {
    /// The creating context, or `None` for a string Redis owns (a command argument).
    owner: Option<Ctx<'a>>,
    ptr: *mut raw::RedisModuleString,
    call: PhantomData<&'a raw::RedisModuleString>,
}

impl<'a> RString<'a> {
    /// A command argument, used in place (Redis frees it after the command).
    ///
    /// # Safety
    /// `ptr` is one of the current command's `argv` strings, and `'a` ends before the call does.
    pub unsafe fn argument(ptr: *mut raw::RedisModuleString) -> Self {
        RString {
            owner: None,
            ptr,
            call: PhantomData,
        }
    }

    /// The raw pointer, for calls not wrapped here.
    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.ptr
    }
}

impl Drop for RString<'_> {
    fn drop(&mut self) {
        if let Some(ctx) = self.owner {
            // SAFETY: created by CreateString with this ctx and not freed elsewhere.
            unsafe { api!(RedisModule_FreeString)(ctx.ptr, self.ptr) };
        }
    }
}

/// `PXAT` as a Redis string created once and never freed, so replication references it; null
/// if Redis could not create it (the caller then passes the text).
fn shared_pxat() -> *mut raw::RedisModuleString {
    static PXAT: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());
    let current = PXAT.load(Ordering::Acquire);
    if !current.is_null() {
        return current;
    }
    // SAFETY: a NULL context makes a string no context frees; Redis copies the bytes.
    let created = unsafe { api!(RedisModule_CreateString)(ptr::null_mut(), c"PXAT".as_ptr(), 4) };
    match PXAT.compare_exchange(
        ptr::null_mut(),
        created,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => created,
        Err(first) => {
            // Another call stored one first (never happens on Redis's one command thread).
            if !created.is_null() {
                // SAFETY: created above with a NULL context and not shared.
                unsafe { api!(RedisModule_FreeString)(ptr::null_mut(), created) };
            }
            first
        }
    }
}

/// The bytes of a Redis string.
///
/// # Safety
/// `s` is null or a live `RedisModuleString` that outlives the returned slice (argv strings live
/// for the whole command call).
pub unsafe fn string_bytes<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    let mut len = 0usize;
    // SAFETY: per the function contract.
    unsafe {
        let ptr = api!(RedisModule_StringPtrLen)(s, &mut len);
        if ptr.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Redis refused a write to an open key (not open for writing, or wrong type).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("Redis refused the key operation")]
pub struct KeyOpRefused;

/// What an opened key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// No such key (or it has expired).
    Empty,
    /// A string: the only type ipcheck stores.
    String,
    /// Any other type: not ours, answered with `WRONGTYPE`.
    Other,
}

/// A key opened during the callback `'a`; closed on drop.
pub struct Key<'a> {
    ptr: *mut raw::RedisModuleKey,
    call: PhantomData<&'a raw::RedisModuleKey>,
}

impl Key<'_> {
    /// The raw pointer (null when the key could not be opened), for calls not wrapped here.
    pub fn as_ptr(&self) -> *mut raw::RedisModuleKey {
        self.ptr
    }

    /// What the key holds.
    pub fn kind(&self) -> KeyKind {
        if self.ptr.is_null() {
            return KeyKind::Empty;
        }
        // SAFETY: open key.
        match unsafe { api!(RedisModule_KeyType)(self.ptr) } as isize {
            raw::REDISMODULE_KEYTYPE_EMPTY => KeyKind::Empty,
            raw::REDISMODULE_KEYTYPE_STRING => KeyKind::String,
            _ => KeyKind::Other,
        }
    }

    /// The string value; `None` if the key is not a string.
    ///
    /// Redis's DMA copies a value that is not a raw string into a new raw string on the first
    /// read. For an int-encoded value that would add 24..32 bytes, which is why the stored form
    /// is never an integer; an embedded string (what a load or a replica makes of every value
    /// the module writes) becomes a raw string no larger (docs/memory.md).
    pub fn read(&self) -> Option<&[u8]> {
        if self.ptr.is_null() {
            return None;
        }
        let mut len = 0usize;
        // SAFETY: open key; the pointer stays valid until the key is modified or closed, which
        // needs `&mut self`.
        unsafe {
            let ptr = api!(RedisModule_StringDMA)(self.ptr, &mut len, READ);
            if ptr.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
        }
    }

    /// Replaces the value with `bytes` (creating the key if empty); the old TTL must be reset.
    /// `held` is the length of the value the key holds (0 when empty), which the caller has
    /// already read.
    pub fn write(&mut self, bytes: &[u8], held: usize) -> Result<(), KeyOpRefused> {
        // Truncate grows a string greedily (sdsMakeRoomFor doubles it), so a value rewritten
        // longer would keep up to twice its size for as long as the key lives; the key is
        // recreated instead, which sizes it exactly, as a native SET would (docs/memory.md).
        // Only growing writes pay the delete; the caller sets the TTL after writing anyway.
        if held != 0 && bytes.len() > held {
            self.delete()?;
        }
        // SAFETY: open for writing; truncate sizes the string, DMA hands us exactly `len` bytes.
        unsafe {
            if api!(RedisModule_StringTruncate)(self.ptr, bytes.len())
                != raw::REDISMODULE_OK as c_int
            {
                return Err(KeyOpRefused);
            }
            let mut len = 0usize;
            let dst = api!(RedisModule_StringDMA)(self.ptr, &mut len, WRITE);
            if dst.is_null() || len != bytes.len() {
                return Err(KeyOpRefused);
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), len);
        }
        Ok(())
    }

    /// Milliseconds left to live at `now_ms` (never negative), or `None` when the key has no
    /// TTL. The caller's clock, not Redis's: `RedisModule_GetExpire` reads `gettimeofday` on
    /// every call (see [`crate::clock`]).
    pub fn ttl_ms(&self, now_ms: i64) -> Option<i64> {
        // SAFETY: open key.
        let at = unsafe { api!(RedisModule_GetAbsExpire)(self.ptr) };
        (at != raw::REDISMODULE_NO_EXPIRE as i64).then(|| at.saturating_sub(now_ms).max(0))
    }

    /// Sets the absolute expiry time in Unix milliseconds.
    pub fn set_expire_at(&mut self, at_ms: i64) -> Result<(), KeyOpRefused> {
        // SAFETY: open for writing and non-empty.
        match unsafe { api!(RedisModule_SetAbsExpire)(self.ptr, at_ms) } {
            r if r == raw::REDISMODULE_OK as c_int => Ok(()),
            _ => Err(KeyOpRefused),
        }
    }

    /// Removes the key's expiry (as `PERSIST` does).
    pub fn persist(&mut self) -> Result<(), KeyOpRefused> {
        // SAFETY: open for writing and non-empty; NO_EXPIRE cancels any expiry.
        match unsafe { api!(RedisModule_SetAbsExpire)(self.ptr, raw::REDISMODULE_NO_EXPIRE as i64) }
        {
            r if r == raw::REDISMODULE_OK as c_int => Ok(()),
            _ => Err(KeyOpRefused),
        }
    }

    /// Deletes the key.
    pub fn delete(&mut self) -> Result<(), KeyOpRefused> {
        // SAFETY: open for writing.
        match unsafe { api!(RedisModule_DeleteKey)(self.ptr) } {
            r if r == raw::REDISMODULE_OK as c_int => Ok(()),
            _ => Err(KeyOpRefused),
        }
    }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: opened by OpenKey and not closed elsewhere.
            unsafe { api!(RedisModule_CloseKey)(self.ptr) };
        }
    }
}
