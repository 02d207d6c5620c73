//! Test support shared by the header modules: arbitrary field values, and the property every
//! header must hold, that encoding into `extFields` and decoding gives the same struct back.

use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::command::{ExtFields, RemotingCommand};
use crate::header::CommandHeader;

/// A header field type that proptest can fill with any value the wire may carry.
pub trait ArbitraryField: Sized + Debug {
    /// Strategy over the type's values.
    fn arbitrary() -> BoxedStrategy<Self>;
}

impl ArbitraryField for String {
    /// Any Unicode text, with extra weight on characters that mean something elsewhere in the
    /// protocol (property separators U+0001/U+0002, list separators, quotes, NUL, non-ASCII).
    fn arbitrary() -> BoxedStrategy<Self> {
        let special = prop::sample::select(vec![
            '\u{1}', '\u{2}', '\0', ',', ';', '=', ' ', '"', '\\', 'é', '中', '😀',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), special], 0..24)
            .prop_map(|chars| chars.into_iter().collect())
            .boxed()
    }
}

impl ArbitraryField for compact_str::CompactString {
    fn arbitrary() -> BoxedStrategy<Self> {
        <String as ArbitraryField>::arbitrary().prop_map(Into::into).boxed()
    }
}

impl<const N: usize> ArbitraryField for apogee_common::message::InlineText<N> {
    /// Up to 96 bytes of text: held inline or, beyond `N`, on the heap.
    fn arbitrary() -> BoxedStrategy<Self> {
        <String as ArbitraryField>::arbitrary().prop_map(Into::into).boxed()
    }
}

macro_rules! any_value_field {
    ($($ty:ty),*) => {$(
        impl ArbitraryField for $ty {
            fn arbitrary() -> BoxedStrategy<Self> {
                any::<$ty>().boxed()
            }
        }
    )*};
}

any_value_field!(i32, i64, bool);

impl<T: ArbitraryField + 'static> ArbitraryField for Option<T> {
    fn arbitrary() -> BoxedStrategy<Self> {
        prop::option::of(T::arbitrary()).boxed()
    }
}

/// Encodes `header` into a fresh `extFields` map and decodes it back, both directly and
/// through a command, failing the case unless both give `header` again.
pub fn assert_round_trip<H: CommandHeader + PartialEq + Debug + Clone>(
    header: &H,
) -> Result<(), TestCaseError> {
    let mut fields = ExtFields::default();
    header.encode(&mut fields);
    let through_command = RemotingCommand::request(0).with_header(header).ext_fields.unwrap_or_default();
    prop_assert_eq!(&through_command, &fields, "with_header writes what encode writes");
    let decoded = H::decode(&fields);
    prop_assert_eq!(decoded.as_ref(), Ok(header));
    let from_command = RemotingCommand::request(0).with_header(header).decode_header::<H>();
    prop_assert_eq!(from_command.as_ref(), Ok(header));
    Ok(())
}

/// One arbitrary-value strategy per listed field, as right-nested pairs ending in `Just(())`:
/// proptest's tuples stop at twelve elements and some headers have more fields.
macro_rules! field_strategies {
    () => { ::proptest::strategy::Just(()) };
    ($head:ident $(, $tail:ident)*) => {
        (
            $crate::header::testkit::ArbitraryField::arbitrary(),
            $crate::header::testkit::field_strategies!($($tail),*),
        )
    };
}

/// The pattern binding the values of [`field_strategies`] to the field names.
macro_rules! field_pattern {
    () => { () };
    ($head:ident $(, $tail:ident)*) => { ($head, $crate::header::testkit::field_pattern!($($tail),*)) };
}

/// For each `module => Header { field, ... }` (every field of the struct, or it does not
/// compile), declares a test module with the header's proptest `strategy()` and a
/// `round_trips` property over it.
macro_rules! round_trip_tests {
    ($( $module:ident => $header:ident { $($field:ident),* $(,)? } )*) => {$(
        mod $module {
            use super::*;

            /// Any value of the header: every field drawn independently.
            pub(crate) fn strategy() -> impl ::proptest::strategy::Strategy<Value = $header> {
                ::proptest::strategy::Strategy::prop_map(
                    $crate::header::testkit::field_strategies!($($field),*),
                    |$crate::header::testkit::field_pattern!($($field),*)| $header { $($field),* },
                )
            }

            ::proptest::proptest! {
                #[test]
                fn round_trips(header in strategy()) {
                    $crate::header::testkit::assert_round_trip(&header)?;
                }
            }
        }
    )*};
}

pub(crate) use {field_pattern, field_strategies, round_trip_tests};

/// An `extFields` map from literal pairs, for byte-level tests.
pub fn ext_fields(pairs: &[(&str, &str)]) -> ExtFields {
    pairs.iter().copied().collect()
}
