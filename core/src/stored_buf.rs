//! A stored value under construction, on the stack: the writer of [`crate::encoding`] builds
//! every value here, so the module's `IPCHECK SET` encodes without touching the heap.
//!
//! Every compact value (at most 39 bytes: a 12-digit base and the full suffix) and nearly every
//! text value fits [`INLINE_LEN`] bytes. A longer one (a long `SOURCE` token: sources have no
//! length limit) moves to a `Vec` rather than being refused or cut.

/// Bytes kept on the stack before the value moves to the heap.
pub const INLINE_LEN: usize = 64;

/// The bytes of one stored value.
#[derive(Clone)]
pub struct StoredBuf {
    inline: [u8; INLINE_LEN],
    len: usize,
    /// Empty (no allocation) until the value outgrows `inline`; then it holds all of it.
    spill: Vec<u8>,
}

impl StoredBuf {
    /// An empty value.
    pub fn new() -> Self {
        StoredBuf {
            inline: [0; INLINE_LEN],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Appends bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.spill.is_empty() {
            let end = self.len.saturating_add(bytes.len());
            if let Some(dst) = self.inline.get_mut(self.len..end) {
                dst.copy_from_slice(bytes);
                self.len = end;
                return;
            }
            self.spill
                .extend_from_slice(self.inline.get(..self.len).unwrap_or(&[]));
        }
        self.spill.extend_from_slice(bytes);
    }

    /// The parts joined, sized once: the lean read builds every reply this way.
    pub(crate) fn joined(parts: &[&[u8]]) -> Self {
        let mut out = StoredBuf::new();
        if parts.iter().map(|p| p.len()).sum::<usize>() > INLINE_LEN {
            // One allocation of the whole, not the inline part copied out and then grown.
            out.spill = parts.concat();
        } else {
            for part in parts {
                out.push(part);
            }
        }
        out
    }

    /// Appends `n` in decimal.
    pub(crate) fn push_u64(&mut self, n: u64) {
        self.push(itoa::Buffer::new().format(n).as_bytes());
    }

    /// The value written so far.
    pub fn as_bytes(&self) -> &[u8] {
        if self.spill.is_empty() {
            self.inline.get(..self.len).unwrap_or(&[])
        } else {
            &self.spill
        }
    }
}

impl Default for StoredBuf {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_in_decimal() {
        for n in [0, 7, 10, 321, u64::MAX] {
            let mut b = StoredBuf::new();
            b.push_u64(n);
            assert_eq!(b.as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn joined_inline_and_spilled() {
        let long = [b'x'; INLINE_LEN];
        let cases: [&[&[u8]]; 3] = [&[b"12", b" ", b"321;0"], &[b"-1", b" ", &long], &[]];
        for parts in cases {
            assert_eq!(StoredBuf::joined(parts).as_bytes(), parts.concat());
        }
    }

    proptest! {
        #[test]
        fn pieces_join_on_the_stack_or_the_heap(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)
        ) {
            let mut b = StoredBuf::new();
            for p in &pieces {
                b.push(p);
            }
            let joined = pieces.concat();
            prop_assert_eq!(b.as_bytes(), joined.as_slice());
        }
    }
}
