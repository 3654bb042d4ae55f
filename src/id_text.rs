//! [`IdText`]: text kept inline up to 38 bytes, for the ids an event carries.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest text kept inline: a UUID (a user's `sub`, an event id) is 36 bytes, an app client id 26.
const INLINE_BYTES: usize = 38;

/// An id's text: inline (no allocation) up to [`INLINE_BYTES`], on the heap beyond. 40 bytes, and
/// `Option<IdText>` too. An event carries three ids that a `CompactString` (inline up to 24 bytes) would
/// each put on the heap: three allocations per event in the decoders, freed on another thread, were
/// about a twentieth of the decode ceiling's time.
#[derive(Clone)]
pub struct IdText(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Heap(Box<str>),
}

impl IdText {
    pub fn new(s: &str) -> IdText {
        if s.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            IdText(Repr::Inline { len: s.len() as u8, bytes })
        } else {
            IdText(Repr::Heap(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let bytes = &bytes[..usize::from(*len)];
                // SAFETY: only `new` fills `bytes`, with the whole of a `&str` (valid UTF-8) of `len` bytes.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(s) => s,
        }
    }

    /// How many bytes of the text are on the heap: 0 when it is inline (for `SignInEvent::heap_bytes`).
    pub fn heap_len(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(s) => s.len(),
        }
    }
}

impl Deref for IdText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for IdText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for IdText {
    fn from(s: &str) -> IdText {
        IdText::new(s)
    }
}

impl From<String> for IdText {
    fn from(s: String) -> IdText {
        if s.len() <= INLINE_BYTES {
            IdText::new(&s)
        } else {
            IdText(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl PartialEq for IdText {
    fn eq(&self, other: &IdText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for IdText {}

impl PartialEq<str> for IdText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for IdText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for IdText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_up_to_38_bytes_stay_inline_and_read_back_whole() {
        assert_eq!(std::mem::size_of::<IdText>(), 40);
        assert_eq!(std::mem::size_of::<Option<IdText>>(), 40);
        for s in ["", "a", "72c1e85f-ceca-4d6e-9712-c0257b752602", "é".repeat(19).as_str(), "x".repeat(39).as_str()] {
            let id = IdText::new(s);
            assert_eq!(id.as_str(), s);
            assert_eq!(id.heap_len(), if s.len() > INLINE_BYTES { s.len() } else { 0 });
            assert_eq!(id, IdText::from(s.to_owned()));
        }
        assert_ne!(IdText::new("a"), IdText::new("b"));
    }
}
