//! The distinct values of one list, each stored once and named by a small index.
//!
//! Most feeds give every network the same value (`tor`, `hosting`), so a list holds a handful of
//! distinct values for a million networks: storing a 4-byte index per network instead of a boxed
//! string (16 bytes plus its allocation) is most of what brought a list under 64 B per network
//! (bench/README.md). Each value is reference-counted, so a value no network uses any more frees
//! its slot, and the table never grows past the number of distinct values in use.

use std::collections::HashMap;

/// Index of a value in a [`Values`] table.
pub type Slot = u32;

/// Interned values with reference counts.
#[derive(Clone, Default)]
pub struct Values {
    /// Slot → (value, networks using it); a free slot has count 0 and an empty value.
    slots: Vec<(Box<str>, u32)>,
    by_value: HashMap<Box<str>, Slot>,
    free: Vec<Slot>,
    /// Heap bytes of the values (kept in both `slots` and `by_value`).
    bytes: usize,
}

impl Values {
    /// The slot of `value`, counting one more use (a new slot if it is not there).
    pub fn acquire(&mut self, value: &str) -> Slot {
        if let Some(&slot) = self.by_value.get(value) {
            self.slots[slot as usize].1 += 1;
            return slot;
        }
        let boxed: Box<str> = value.into();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = (boxed.clone(), 1);
                slot
            }
            None => {
                self.slots.push((boxed.clone(), 1));
                (self.slots.len() - 1) as Slot
            }
        };
        self.bytes += 2 * boxed.len();
        self.by_value.insert(boxed, slot);
        slot
    }

    /// Counts one use of `slot` less, freeing it at zero.
    pub fn release(&mut self, slot: Slot) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.1 == 0 {
            return;
        }
        entry.1 -= 1;
        if entry.1 == 0 {
            let value = std::mem::take(&mut entry.0);
            self.bytes -= 2 * value.len();
            self.by_value.remove(&value);
            self.free.push(slot);
        }
    }

    /// The value in `slot` (empty for a slot not in use).
    pub fn get(&self, slot: Slot) -> &str {
        self.slots.get(slot as usize).map_or("", |e| &e.0)
    }

    /// Distinct values in use.
    pub fn distinct(&self) -> usize {
        self.by_value.len()
    }

    /// Approximate bytes in use, allocations' slack included.
    pub fn memory(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(Box<str>, u32)>()
            + self.by_value.capacity() * (std::mem::size_of::<(Box<str>, Slot)>() + 1)
            + self.free.capacity() * std::mem::size_of::<Slot>()
            + self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_counts_and_reuses_slots() {
        let mut v = Values::default();
        let a = v.acquire("tor");
        assert_eq!(v.acquire("tor"), a);
        let b = v.acquire("vpn");
        assert_ne!(a, b);
        assert_eq!((v.get(a), v.get(b), v.distinct()), ("tor", "vpn", 2));
        v.release(a);
        assert_eq!(v.get(a), "tor");
        v.release(a);
        assert_eq!((v.get(a), v.distinct()), ("", 1));
        assert_eq!(v.acquire("hosting"), a);
        v.release(99);
        assert_eq!(v.distinct(), 2);
    }
}
