//! Java enums that appear in bodies, written by constant name.
//!
//! Reading is forgiving: a constant may also be given by ordinal (fastjson accepts both), and a
//! name this version does not know reads as absent (`None`, or the property's Java default)
//! instead of failing the whole body, which is what fastjson does with an unknown name.

use compact_str::CompactString;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::language::LanguageCode;

/// What a peer wrote where an enum constant belongs. A name is held inline up to 24 bytes,
/// so reading a header's `language` allocates nothing.
enum EnumToken {
    Name(CompactString),
    Ordinal(i64),
    /// `null`, a boolean, a decimal, an object or an array: nothing usable.
    Unusable,
}

impl<'de> Deserialize<'de> for EnumToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EnumTokenVisitor)
    }
}

struct EnumTokenVisitor;

impl<'de> Visitor<'de> for EnumTokenVisitor {
    type Value = EnumToken;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an enum constant name or ordinal")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<EnumToken, E> {
        Ok(EnumToken::Name(CompactString::new(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<EnumToken, E> {
        Ok(EnumToken::Ordinal(i64::try_from(value).unwrap_or(i64::MAX)))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<EnumToken, E> {
        Ok(EnumToken::Ordinal(value))
    }

    fn visit_f64<E: serde::de::Error>(self, _value: f64) -> Result<EnumToken, E> {
        Ok(EnumToken::Unusable)
    }

    fn visit_bool<E: serde::de::Error>(self, _value: bool) -> Result<EnumToken, E> {
        Ok(EnumToken::Unusable)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<EnumToken, E> {
        Ok(EnumToken::Unusable)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<EnumToken, E> {
        Ok(EnumToken::Unusable)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<EnumToken, D::Error> {
        EnumToken::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<EnumToken, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(EnumToken::Unusable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<EnumToken, A::Error> {
        while members.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(EnumToken::Unusable)
    }
}

/// A Java enum with a fixed set of constants.
pub(crate) trait JavaEnum: Sized {
    /// The constant named `name`, if known.
    fn from_name(name: &str) -> Option<Self>;
    /// The constant with Java ordinal `ordinal`, if any.
    fn from_ordinal(ordinal: i64) -> Option<Self>;
}

/// Reads an optional enum property: unknown names and unusable values read as `None`.
pub(crate) fn lenient<'de, D: Deserializer<'de>, E: JavaEnum>(
    deserializer: D,
) -> Result<Option<E>, D::Error> {
    Ok(match EnumToken::deserialize(deserializer)? {
        EnumToken::Name(name) => E::from_name(&name),
        EnumToken::Ordinal(ordinal) => E::from_ordinal(ordinal),
        EnumToken::Unusable => None,
    })
}

/// Reads an enum property with a Java default: unknown names read as the default.
pub(crate) fn lenient_or_default<'de, D: Deserializer<'de>, E: JavaEnum + Default>(
    deserializer: D,
) -> Result<E, D::Error> {
    Ok(lenient(deserializer)?.unwrap_or_default())
}

/// Declares a Java enum: the Rust enum, its wire names, and serde by name.
macro_rules! java_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every constant, in Java declaration (ordinal) order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The Java constant name, as written on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The constant with Java name `name`, if this version knows it.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|constant| constant.name() == name)
            }
        }

        impl JavaEnum for $name {
            fn from_name(name: &str) -> Option<Self> {
                $name::from_name(name)
            }

            fn from_ordinal(ordinal: i64) -> Option<Self> {
                usize::try_from(ordinal).ok().and_then(|index| Self::ALL.get(index)).copied()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        /// Strict on its own (an unknown name is an error); body properties of this type use
        /// the lenient readers of this module instead.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                lenient::<D, Self>(deserializer)?.ok_or_else(|| {
                    serde::de::Error::custom(concat!("unknown or missing ", stringify!($name), " constant"))
                })
            }
        }
    };
}

java_enum! {
    /// How a consumer gets messages (Java `ConsumeType`), reported in heartbeats.
    ConsumeType {
        /// Pull consumer: the application asks for messages.
        ConsumeActively => "CONSUME_ACTIVELY",
        /// Push consumer: the client library long-polls and delivers.
        ConsumePassively => "CONSUME_PASSIVELY",
        /// 5.x POP consumer.
        ConsumePop => "CONSUME_POP",
    }
}

java_enum! {
    /// Whether every consumer of a group gets every message (Java `MessageModel`).
    MessageModel {
        /// Every consumer instance receives every message; offsets are kept by the client.
        Broadcasting => "BROADCASTING",
        /// The group shares the queues; offsets are kept by the broker.
        Clustering => "CLUSTERING",
    }
}

java_enum! {
    /// Where a consumer group without a committed offset starts (Java `ConsumeFromWhere`).
    ConsumeFromWhere {
        /// The queue's end.
        ConsumeFromLastOffset => "CONSUME_FROM_LAST_OFFSET",
        /// Deprecated alias kept for old clients.
        ConsumeFromLastOffsetAndFromMinWhenBootFirst => "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        /// Deprecated: the queue's minimum offset.
        ConsumeFromMinOffset => "CONSUME_FROM_MIN_OFFSET",
        /// Deprecated: the queue's maximum offset.
        ConsumeFromMaxOffset => "CONSUME_FROM_MAX_OFFSET",
        /// The queue's beginning.
        ConsumeFromFirstOffset => "CONSUME_FROM_FIRST_OFFSET",
        /// The first message stored at or after the consumer's timestamp.
        ConsumeFromTimestamp => "CONSUME_FROM_TIMESTAMP",
    }
}

java_enum! {
    /// Which retry schedule a subscription group uses (Java `GroupRetryPolicyType`).
    GroupRetryPolicyType {
        /// Doubling delays between `initial` and `max`.
        Exponential => "EXPONENTIAL",
        /// A fixed list of delays.
        Customized => "CUSTOMIZED",
    }
}

impl Default for GroupRetryPolicyType {
    /// Java's `GroupRetryPolicy` starts as CUSTOMIZED.
    fn default() -> Self {
        Self::Customized
    }
}

/// The language of a subscription expression. In Java this is a plain string (`"TAG"`,
/// `"SQL92"`), so a name Apogee does not know is kept as [`ExpressionType::Other`]: the broker
/// must refuse it as an unsupported filter type rather than treat it as tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ExpressionType {
    /// Tag expression: `*` or `tagA || tagB`. Also what an empty or missing type means.
    #[default]
    Tag,
    /// SQL92 property filter.
    Sql92,
    /// Any other type name, kept as written.
    Other(String),
}

impl ExpressionType {
    /// The name written on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::Tag => "TAG",
            Self::Sql92 => "SQL92",
            Self::Other(name) => name,
        }
    }

    /// Reads a type name the way Java's `ExpressionType.isTagType` does: empty means TAG.
    pub fn from_name(name: &str) -> Self {
        match name {
            "" | "TAG" => Self::Tag,
            "SQL92" => Self::Sql92,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl Serialize for ExpressionType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ExpressionType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match EnumToken::deserialize(deserializer)? {
            EnumToken::Name(name) => Self::from_name(&name),
            EnumToken::Ordinal(number) => Self::Other(number.to_string()),
            EnumToken::Unusable => Self::Tag,
        })
    }
}

/// serde helpers for an optional [`LanguageCode`] property, written by constant name; unknown
/// names read as [`LanguageCode::Other`], ordinals as the binary-header code. Bodies and the
/// JSON header's `language` member both read it this way.
pub(crate) mod language {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        language: &Option<LanguageCode>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match language {
            Some(language) => serializer.serialize_str(language.name()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<LanguageCode>, D::Error> {
        Ok(match EnumToken::deserialize(deserializer)? {
            EnumToken::Name(name) => Some(LanguageCode::from_name(&name)),
            EnumToken::Ordinal(code) => {
                Some(u8::try_from(code).map_or(LanguageCode::Other, LanguageCode::from_code))
            }
            EnumToken::Unusable => None,
        })
    }
}
