//! `InlineText`: text held without an allocation up to a length fixed by its type, for the
//! strings every send carries (message ids, properties).

use std::fmt;
use std::ops::Deref;

use arrayvec::ArrayString;

use super::msg_id::V6_ID_HEX_LEN;

/// Text of up to `N` bytes held inline, longer text on the heap: the send path carries its
/// strings from request to record and response without an allocation when they are as long
/// as they usually are.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineText<const N: usize>(Repr<N>);

#[derive(Clone, PartialEq, Eq)]
enum Repr<const N: usize> {
    Inline(ArrayString<N>),
    Heap(String),
}

/// The text of a message id: an offset id the broker answers with, or a producer's
/// `UNIQ_KEY`. Ids as brokers and clients make them (32 hex characters, 56 on IPv6) are held
/// inline; a longer one (a producer may set any `UNIQ_KEY`, and a batch answers with many ids
/// joined) moves to the heap.
pub type IdText = InlineText<V6_ID_HEX_LEN>;

impl<const N: usize> InlineText<N> {
    /// Empty.
    pub const fn new() -> Self {
        Self(Repr::Inline(ArrayString::new_const()))
    }

    /// Appends `text`, moving to the heap when it no longer fits inline.
    pub fn push_str(&mut self, text: &str) {
        match &mut self.0 {
            Repr::Inline(inline) => {
                if inline.try_push_str(text).is_err() {
                    let mut heap = String::with_capacity(inline.len() + text.len());
                    heap.push_str(inline);
                    heap.push_str(text);
                    self.0 = Repr::Heap(heap);
                }
            }
            Repr::Heap(heap) => heap.push_str(text),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(inline) => inline,
            Repr::Heap(heap) => heap,
        }
    }
}

impl<const N: usize> Default for InlineText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deref for InlineText<N> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for InlineText<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> From<&str> for InlineText<N> {
    fn from(text: &str) -> Self {
        let mut id = Self::new();
        id.push_str(text);
        id
    }
}

impl<const N: usize> From<String> for InlineText<N> {
    /// Keeps the allocation of a string too long to hold inline.
    fn from(text: String) -> Self {
        match ArrayString::from(&text) {
            Ok(inline) => Self(Repr::Inline(inline)),
            Err(_) => Self(Repr::Heap(text)),
        }
    }
}

impl<const N: usize> From<InlineText<N>> for String {
    fn from(id: InlineText<N>) -> Self {
        match id.0 {
            Repr::Inline(inline) => inline.as_str().to_owned(),
            Repr::Heap(heap) => heap,
        }
    }
}

impl<const N: usize> PartialEq<str> for InlineText<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for InlineText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> PartialEq<InlineText<N>> for String {
    fn eq(&self, other: &InlineText<N>) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Writing never fails: text that no longer fits inline moves to the heap.
impl<const N: usize> fmt::Write for InlineText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

impl<const N: usize> fmt::Display for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_usual_length_stay_inline_and_longer_ones_move_to_the_heap() {
        let v6 = "A".repeat(V6_ID_HEX_LEN);
        let mut id = IdText::from(v6.as_str());
        assert!(matches!(id.0, Repr::Inline(_)));
        id.push_str(",B");
        assert!(matches!(id.0, Repr::Heap(_)));
        assert_eq!(id, format!("{v6},B").as_str());
        assert_eq!(String::from(id), format!("{v6},B"));
        assert_eq!(IdText::from(String::from("short")).as_str(), "short");
        assert_eq!(IdText::default().as_str(), "");
    }
}
