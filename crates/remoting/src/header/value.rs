//! Text forms of header field values, as Java's `toString()` writes them and its header
//! decoder reads them.

use compact_str::{CompactString, ToCompactString};

/// A type that can be a header field value.
pub trait HeaderValue: Sized {
    /// Java `toString()` form; short texts (numbers, names) need no allocation.
    fn to_text(&self) -> CompactString;
    /// Parses the text form; `None` when it does not parse.
    fn from_text(text: &str) -> Option<Self>;

    /// Lends the text form to `use_text`; strings lend their own text, where [`Self::to_text`]
    /// would copy a long one into a new allocation first (header fields are written into
    /// `ExtFields`, which copies them anyway).
    fn with_text<R>(&self, use_text: impl FnOnce(&str) -> R) -> R {
        use_text(&self.to_text())
    }
}

impl HeaderValue for String {
    fn to_text(&self) -> CompactString {
        CompactString::from(self.as_str())
    }

    fn with_text<R>(&self, use_text: impl FnOnce(&str) -> R) -> R {
        use_text(self)
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl HeaderValue for CompactString {
    fn to_text(&self) -> CompactString {
        self.clone()
    }

    fn with_text<R>(&self, use_text: impl FnOnce(&str) -> R) -> R {
        use_text(self)
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(CompactString::new(text))
    }
}

impl<const N: usize> HeaderValue for apogee_common::message::InlineText<N> {
    fn to_text(&self) -> CompactString {
        CompactString::new(self.as_str())
    }

    fn with_text<R>(&self, use_text: impl FnOnce(&str) -> R) -> R {
        use_text(self)
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(Self::from(text))
    }
}

macro_rules! integer_value {
    ($($ty:ty),*) => {$(
        impl HeaderValue for $ty {
            fn to_text(&self) -> CompactString {
                self.to_compact_string()
            }

            fn from_text(text: &str) -> Option<Self> {
                text.trim().parse().ok()
            }
        }
    )*};
}

integer_value!(i32, i64);

impl HeaderValue for bool {
    fn to_text(&self) -> CompactString {
        CompactString::const_new(if *self { "true" } else { "false" })
    }

    /// Java `Boolean.parseBoolean` (`true` in any case is true, anything else false), and
    /// also `1`: the Apache C++ client (1.x and 2.x) writes its bools as `1`/`0`, which Java's
    /// broker misreads as false, so a C++ batch lands there as one message holding the whole
    /// encoded batch (apache/rocketmq-client-cpp#363). No client writes `1` meaning false.
    fn from_text(text: &str) -> Option<Self> {
        let text = text.trim();
        Some(text.eq_ignore_ascii_case("true") || text == "1")
    }
}
