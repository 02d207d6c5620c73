//! A lenient `serde::Deserializer` over a parsed `serde_json::Value`, converting the way
//! fastjson converts when it fills a Java object:
//!
//! - a number may come as a string (`"queueId":"3"`), a boolean as a number or a string, a
//!   string as a number; `""` and `null` read as zero / false;
//! - `null` counts as absent: a null struct member is skipped (the struct's default applies),
//!   a null where a collection is expected reads as an empty one;
//! - map keys are text; a key type that is a number is parsed from it, a key type that is a
//!   struct (`MessageQueue`) is parsed from the key's JSON text, which is how bare object keys,
//!   quoted object keys and quoted or bare number keys all end up readable;
//! - enums are read by constant name or by ordinal.
//!
//! Strings are always handed to visitors as owned copies, so the reader can work on values it
//! parses itself (re-parsed keys) without lifetime ties to the input.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Number, Value};

use super::parse::{self, MAX_DEPTH};
use super::BodyError;

/// Deserializes a parsed body.
pub(crate) fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, BodyError> {
    T::deserialize(ValueReader { value, depth: 0 })
}

/// Reads one value; `depth` is the nesting of the container holding it.
#[derive(Clone, Copy)]
struct ValueReader<'a> {
    value: &'a Value,
    depth: usize,
}

/// An integer read from text or from a JSON number, before range checks.
enum Integer {
    Unsigned(u64),
    Signed(i64),
}

impl Integer {
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self {
            Self::Unsigned(value) => visitor.visit_u64(value),
            Self::Signed(value) => visitor.visit_i64(value),
        }
    }

    /// fastjson's cast of a decimal number to an integer type: drop the fraction.
    fn truncate(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        let whole = value.trunc();
        if (0.0..18_446_744_073_709_551_616.0).contains(&whole) {
            Some(Self::Unsigned(whole as u64))
        } else if (-9_223_372_036_854_775_808.0..0.0).contains(&whole) {
            Some(Self::Signed(whole as i64))
        } else {
            None
        }
    }

    fn from_number(number: &Number) -> Option<Self> {
        if let Some(value) = number.as_u64() {
            Some(Self::Unsigned(value))
        } else if let Some(value) = number.as_i64() {
            Some(Self::Signed(value))
        } else {
            number.as_f64().and_then(Self::truncate)
        }
    }

    /// Parses an integer written as text; blank and `null` read as zero.
    fn from_text(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("null") {
            return Some(Self::Unsigned(0));
        }
        if let Ok(value) = text.parse::<u64>() {
            return Some(Self::Unsigned(value));
        }
        if let Ok(value) = text.parse::<i64>() {
            return Some(Self::Signed(value));
        }
        text.parse::<f64>().ok().and_then(Self::truncate)
    }
}

/// Parses a decimal number written as text; blank and `null` read as zero.
fn float_from_text(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("null") {
        return Some(0.0);
    }
    text.parse::<f64>().ok()
}

/// Parses a boolean written as text, as fastjson does: `true`/`false` in any case, `1`/`0`,
/// blank and `null` as false.
fn bool_from_text(text: &str) -> Option<bool> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Some(true)
    } else if text.eq_ignore_ascii_case("false")
        || text == "0"
        || text.is_empty()
        || text.eq_ignore_ascii_case("null")
    {
        Some(false)
    } else {
        None
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(value: &Value, expected: &str) -> BodyError {
    match value {
        Value::String(text) => BodyError::new(format!("expected {expected}, found the string {text:?}")),
        Value::Number(number) => BodyError::new(format!("expected {expected}, found the number {number}")),
        other => BodyError::new(format!("expected {expected}, found {}", describe(other))),
    }
}

/// Compact JSON text of a value, for a string wanted where an object or array is given.
fn compact_text(value: &Value) -> Result<String, BodyError> {
    serde_json::to_string(value).map_err(|error| BodyError::new(error.to_string()))
}

impl<'a> ValueReader<'a> {
    fn child(&self, value: &'a Value) -> Self {
        Self { value, depth: self.depth + 1 }
    }

    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let integer = match self.value {
            Value::Number(number) => Integer::from_number(number),
            Value::String(text) => Integer::from_text(text),
            Value::Bool(flag) => Some(Integer::Unsigned(u64::from(*flag))),
            Value::Null => Some(Integer::Unsigned(0)),
            Value::Array(_) | Value::Object(_) => None,
        };
        integer.ok_or_else(|| mismatch(self.value, "an integer"))?.visit(visitor)
    }

    fn float<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let float = match self.value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => float_from_text(text),
            Value::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
            Value::Null => Some(0.0),
            Value::Array(_) | Value::Object(_) => None,
        };
        visitor.visit_f64(float.ok_or_else(|| mismatch(self.value, "a number"))?)
    }

    /// A string that holds an object's or array's JSON text, parsed (for struct-valued keys and
    /// the occasional peer that quotes a nested object).
    fn reparse(&self, text: &str) -> Result<Value, BodyError> {
        parse::parse_nested(text.as_bytes(), self.depth)
    }

    fn empty_seq<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        visitor.visit_seq(SeqReader { items: [].iter(), depth: self.depth + 1, index: 0 })
    }

    /// Reads a map or a struct: an object, null or blank text as empty, or text holding an
    /// object, which is parsed and read again by `reread`. `skip_nulls` drops null members.
    fn object<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        skip_nulls: bool,
        reread: impl FnOnce(ValueReader<'_>, V) -> Result<V::Value, BodyError>,
    ) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Object(members) => visitor.visit_map(MapReader::new(members, self.depth + 1, skip_nulls)),
            Value::Null => self.empty_map(visitor),
            Value::String(text) if text.trim().is_empty() => self.empty_map(visitor),
            Value::String(text) if text.trim_start().starts_with('{') => {
                let parsed = self.reparse(text)?;
                reread(ValueReader { value: &parsed, depth: self.depth }, visitor)
            }
            other => Err(mismatch(other, "an object")),
        }
    }

    fn empty_map<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let empty = serde_json::Map::new();
        visitor.visit_map(MapReader::new(&empty, self.depth + 1, true))
    }
}

/// The `deserialize_*` methods both readers answer alike: integers of every width through the
/// reader's own `integer` method (the visitor range-checks them), tuples as sequences, newtype
/// structs as their content, and ignored values as nothing.
macro_rules! shared_deserializers {
    ($de:lifetime) => {
        shared_deserializers!(@integers $de; deserialize_i8, deserialize_i16, deserialize_i32,
            deserialize_i64, deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32,
            deserialize_u64, deserialize_u128);

        fn deserialize_tuple<V: Visitor<$de>>(self, _len: usize, visitor: V) -> Result<V::Value, BodyError> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_tuple_struct<V: Visitor<$de>>(
            self,
            _name: &'static str,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, BodyError> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_newtype_struct<V: Visitor<$de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, BodyError> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_ignored_any<V: Visitor<$de>>(self, visitor: V) -> Result<V::Value, BodyError> {
            visitor.visit_unit()
        }
    };
    (@integers $de:lifetime; $($method:ident),*) => {$(
        fn $method<V: Visitor<$de>>(self, visitor: V) -> Result<V::Value, BodyError> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueReader<'_> {
    type Error = BodyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(*flag),
            Value::Number(number) => match Integer::from_number(number) {
                Some(integer) if !number.is_f64() => integer.visit(visitor),
                _ => visitor.visit_f64(number.as_f64().unwrap_or_default()),
            },
            Value::String(text) => visitor.visit_str(text),
            Value::Array(items) => {
                visitor.visit_seq(SeqReader { items: items.iter(), depth: self.depth + 1, index: 0 })
            }
            Value::Object(members) => visitor.visit_map(MapReader::new(members, self.depth + 1, false)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let flag = match self.value {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => Some(number.as_f64().is_some_and(|value| value != 0.0)),
            Value::String(text) => bool_from_text(text),
            Value::Null => Some(false),
            Value::Array(_) | Value::Object(_) => None,
        };
        visitor.visit_bool(flag.ok_or_else(|| mismatch(self.value, "a boolean"))?)
    }

    shared_deserializers!('de);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::String(text) => visitor.visit_str(text),
            Value::Null => visitor.visit_str(""),
            Value::Bool(flag) => visitor.visit_str(if *flag { "true" } else { "false" }),
            Value::Number(number) => visitor.visit_str(&number.to_string()),
            Value::Array(_) | Value::Object(_) => visitor.visit_string(compact_text(self.value)?),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_byte_buf(visitor)
    }

    /// `byte[]` is written by fastjson as a base64 string.
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        use base64::Engine as _;
        match self.value {
            Value::String(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|error| BodyError::new(format!("expected base64 bytes: {error}")))?;
                visitor.visit_byte_buf(bytes)
            }
            Value::Array(_) => self.deserialize_seq(visitor),
            Value::Null => visitor.visit_byte_buf(Vec::new()),
            other => Err(mismatch(other, "base64 bytes")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        visitor.visit_unit()
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Array(items) => {
                visitor.visit_seq(SeqReader { items: items.iter(), depth: self.depth + 1, index: 0 })
            }
            Value::Null => self.empty_seq(visitor),
            Value::String(text) if text.trim().is_empty() => self.empty_seq(visitor),
            Value::String(text) if text.trim_start().starts_with('[') => {
                let parsed = self.reparse(text)?;
                ValueReader { value: &parsed, depth: self.depth }.deserialize_seq(visitor)
            }
            other => Err(mismatch(other, "an array")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.object(visitor, false, |reader, visitor| reader.deserialize_map(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        // Null members are skipped: the struct's default applies, as a Java field keeps its
        // initial value when fastjson reads null.
        self.object(visitor, true, |reader, visitor| reader.deserialize_struct(name, fields, visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.value {
            Value::String(name) => visitor.visit_enum(name.as_str().into_deserializer()),
            Value::Number(number) => match Integer::from_number(number) {
                Some(Integer::Unsigned(ordinal)) => visitor.visit_enum(OrdinalVariant(ordinal)),
                _ => Err(mismatch(self.value, "an enum constant name or ordinal")),
            },
            Value::Object(members) if members.len() == 1 => match members.iter().next() {
                Some((name, content)) => {
                    visitor.visit_enum(VariantWithContent { name, content: self.child(content) })
                }
                None => Err(mismatch(self.value, "an enum constant")),
            },
            other => Err(mismatch(other, "an enum constant name")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Number(number) => match number.as_u64() {
                Some(index) => visitor.visit_u64(index),
                None => visitor.visit_str(&number.to_string()),
            },
            _ => self.deserialize_string(visitor),
        }
    }
}

/// The elements of an array.
struct SeqReader<'a> {
    items: std::slice::Iter<'a, Value>,
    depth: usize,
    index: usize,
}

impl<'de> SeqAccess<'de> for SeqReader<'_> {
    type Error = BodyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, BodyError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(ValueReader { value: item, depth: self.depth })
            .map(Some)
            .map_err(|error| error.within(format!("[{index}]")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The members of an object, optionally without those whose value is null.
struct MapReader<'a> {
    members: serde_json::map::Iter<'a>,
    depth: usize,
    skip_nulls: bool,
    pending: Option<(&'a String, &'a Value)>,
}

impl<'a> MapReader<'a> {
    fn new(members: &'a serde_json::Map<String, Value>, depth: usize, skip_nulls: bool) -> Self {
        Self { members: members.iter(), depth, skip_nulls, pending: None }
    }
}

impl<'de> MapAccess<'de> for MapReader<'_> {
    type Error = BodyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, BodyError> {
        for (key, value) in self.members.by_ref() {
            if self.skip_nulls && value.is_null() {
                continue;
            }
            self.pending = Some((key, value));
            return seed
                .deserialize(KeyReader { key, depth: self.depth })
                .map(Some)
                .map_err(|error| error.within(key.clone()));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BodyError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(BodyError::new("a map value was requested before its key"));
        };
        seed.deserialize(ValueReader { value, depth: self.depth }).map_err(|error| error.within(key.clone()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// Reads an object key. Keys are text; numbers and structs are parsed out of it.
struct KeyReader<'a> {
    key: &'a str,
    /// Nesting of the object the key belongs to.
    depth: usize,
}

impl KeyReader<'_> {
    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match Integer::from_text(self.key) {
            Some(integer) if !self.key.trim().is_empty() => integer.visit(visitor),
            _ => Err(BodyError::new(format!("expected an integer map key, found {:?}", self.key))),
        }
    }

    fn parsed(&self) -> Result<Value, BodyError> {
        if self.depth >= MAX_DEPTH {
            return Err(BodyError::new(format!("the body nests objects deeper than {MAX_DEPTH} levels")));
        }
        parse::parse_nested(self.key.as_bytes(), self.depth)
    }
}

impl<'de> de::Deserializer<'de> for KeyReader<'_> {
    type Error = BodyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        visitor.visit_str(self.key)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match bool_from_text(self.key) {
            Some(flag) => visitor.visit_bool(flag),
            None => Err(BodyError::new(format!("expected a boolean map key, found {:?}", self.key))),
        }
    }

    shared_deserializers!('de);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.key.trim().parse::<f64>() {
            Ok(value) => visitor.visit_f64(value),
            Err(_) => Err(BodyError::new(format!("expected a numeric map key, found {:?}", self.key))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        visitor.visit_some(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        visitor.visit_enum(self.key.into_deserializer())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let parsed = self.parsed()?;
        ValueReader { value: &parsed, depth: self.depth }.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        let parsed = self.parsed()?;
        ValueReader { value: &parsed, depth: self.depth }.deserialize_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        let parsed = self.parsed()?;
        ValueReader { value: &parsed, depth: self.depth }.deserialize_struct(name, fields, visitor)
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct identifier
    }
}

/// An enum given by its ordinal: only unit variants can be read this way.
struct OrdinalVariant(u64);

impl<'de> EnumAccess<'de> for OrdinalVariant {
    type Error = BodyError;
    type Variant = UnitOnly;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, UnitOnly), BodyError> {
        let variant = seed.deserialize(self.0.into_deserializer())?;
        Ok((variant, UnitOnly))
    }
}

/// The content of an enum read from a name or an ordinal: nothing.
struct UnitOnly;

impl<'de> VariantAccess<'de> for UnitOnly {
    type Error = BodyError;

    fn unit_variant(self) -> Result<(), BodyError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, BodyError> {
        Err(BodyError::new("expected an enum variant with content, found a bare constant"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, BodyError> {
        Err(BodyError::new("expected an enum variant with content, found a bare constant"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, BodyError> {
        Err(BodyError::new("expected an enum variant with content, found a bare constant"))
    }
}

/// An enum written as `{"Variant": content}`.
struct VariantWithContent<'a> {
    name: &'a str,
    content: ValueReader<'a>,
}

impl<'de, 'a> EnumAccess<'de> for VariantWithContent<'a> {
    type Error = BodyError;
    type Variant = ValueReader<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, ValueReader<'a>), BodyError> {
        let variant = seed.deserialize(self.name.into_deserializer())?;
        Ok((variant, self.content))
    }
}

impl<'de> VariantAccess<'de> for ValueReader<'_> {
    type Error = BodyError;

    fn unit_variant(self) -> Result<(), BodyError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, BodyError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, BodyError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
