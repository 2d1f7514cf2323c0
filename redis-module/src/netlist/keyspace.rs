//! List keys: their names and opening one as a list.
//!
//! A list named `<name>` lives at `<prefix>{lists}:<name>` (`ipcheck:{lists}:tor` with the
//! default prefix). Commands take that full key, not the bare name, so the declared key
//! argument *is* the key: Redis checks ACL key patterns and cluster slots against it directly,
//! and the shared `{lists}` hash tag puts every list in one slot, so one `IPCHECK NETMATCH` can
//! read several lists in Redis Cluster, and `RENAME` of a staging list over a live one stays in
//! the slot.

use std::ffi::c_void;
use std::os::raw::c_int;

use redis_module::raw;

use crate::error::CommandError;
use crate::ffi::{api, Ctx, Key, KeyKind, RString};
use crate::settings;

use super::datatype::{into_raw, net_type};
use super::table::NetList;

/// What follows the key prefix in every list key.
pub const LISTS_TAG: &str = "{lists}:";

/// Longest list name accepted (the part after `{lists}:`).
pub const MAX_NAME_LEN: usize = 128;

/// Refuses a key that is not `<prefix>{lists}:<name>` with a non-empty name.
pub fn check_list_key(key: &[u8]) -> Result<(), CommandError> {
    let prefix = settings::key_prefix();
    let name = key
        .strip_prefix(prefix.as_bytes())
        .and_then(|rest| rest.strip_prefix(LISTS_TAG.as_bytes()));
    match name {
        Some(name) if !name.is_empty() && name.len() <= MAX_NAME_LEN => Ok(()),
        _ => Err(CommandError::ListKey {
            given: String::from_utf8_lossy(key).into_owned(),
            prefix: String::from_utf8_lossy(prefix.as_bytes()).into_owned(),
        }),
    }
}

/// A key opened as a list: empty, or holding a network list (anything else is refused).
pub struct ListKey<'a> {
    key: Key<'a>,
    list: *mut NetList,
}

impl<'a> ListKey<'a> {
    /// Opens `name` with `mode`; `WRONGTYPE` when it holds anything but a list.
    pub fn open(ctx: Ctx<'a>, name: &RString, mode: c_int) -> Result<Self, CommandError> {
        let key = ctx.open_key(name, mode);
        let list = match key.kind() {
            KeyKind::Empty => std::ptr::null_mut(),
            KeyKind::String => return Err(CommandError::WrongType),
            KeyKind::Other => {
                // SAFETY: an open, non-empty key.
                unsafe {
                    if api!(RedisModule_ModuleTypeGetType)(key.as_ptr()) != net_type() {
                        return Err(CommandError::WrongType);
                    }
                    api!(RedisModule_ModuleTypeGetValue)(key.as_ptr()).cast::<NetList>()
                }
            }
        };
        Ok(ListKey { key, list })
    }

    /// The list, if the key holds one.
    pub fn list(&self) -> Option<&NetList> {
        // SAFETY: the value of our type in a key that stays open (so alive) while `self` is.
        unsafe { self.list.as_ref() }
    }

    /// The list for changing in place, if the key holds one (the key must be open for writing).
    pub fn list_mut(&mut self) -> Option<&mut NetList> {
        // SAFETY: as in `list`; `&mut self` makes this the only reference.
        unsafe { self.list.as_mut() }
    }

    /// Stores `list` as the key's value (the key must be empty and open for writing).
    pub fn create(&mut self, list: NetList) -> Result<(), CommandError> {
        let value: *mut c_void = into_raw(list);
        // SAFETY: open for writing; on success Redis owns `value` and frees it through our type.
        let rc =
            unsafe { api!(RedisModule_ModuleTypeSetValue)(self.key.as_ptr(), net_type(), value) };
        if rc != raw::REDISMODULE_OK as c_int {
            // SAFETY: Redis refused it, so it is still ours.
            drop(unsafe { Box::from_raw(value.cast::<NetList>()) });
            return Err(CommandError::Internal("Redis refused to store the list"));
        }
        self.list = value.cast();
        Ok(())
    }

    /// Deletes the key (a list left with no network goes away, as an empty set does).
    pub fn delete(&mut self) -> Result<(), CommandError> {
        self.list = std::ptr::null_mut();
        self.key
            .delete()
            .map_err(|_| CommandError::Internal("Redis refused to delete the list"))
    }
}
