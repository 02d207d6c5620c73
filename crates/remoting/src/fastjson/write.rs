//! The writer: a `serde::Serializer` producing fastjson's output.
//!
//! What it reproduces, in both dialects: struct properties in alphabetical order (fastjson's
//! `SortField`), null properties and null map values left out, `NaN`/infinite numbers as
//! `null`, decimals in Java notation, bytes as base64, enums by constant name. Map keys are
//! classified by their serde type (see [`Dialect`]).

use std::cmp::Ordering;
use std::io::Write as _;

use serde::ser::{self, Impossible, Serialize};

use super::number::{java_double, java_float};
use super::{BodyError, Dialect};

/// Largest integer a browser's `double` holds exactly; beyond it the browser-compatible dialect
/// quotes integers.
const BROWSER_SAFE_INTEGER: i128 = 9_007_199_254_740_991;

/// Encodes a value.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T, dialect: Dialect) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(128);
    value.serialize(Writer { out: &mut out, dialect })?;
    Ok(out)
}

/// Writes `text` as a quoted JSON string escaped the way fastjson escapes it in `dialect`.
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str, dialect: Dialect) {
    out.push(b'"');
    let mut run_start = 0;
    for (index, character) in text.char_indices() {
        let short_escape: Option<u8> = match character {
            '"' => Some(b'"'),
            '\\' => Some(b'\\'),
            '/' if dialect == Dialect::Standard => Some(b'/'),
            '\u{8}' => Some(b'b'),
            '\t' => Some(b't'),
            '\n' => Some(b'n'),
            '\u{c}' => Some(b'f'),
            '\r' => Some(b'r'),
            _ => None,
        };
        let unicode_escape = short_escape.is_none()
            && match dialect {
                Dialect::Fastjson => {
                    matches!(character, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
                }
                Dialect::Standard => !(' '..'\u{7f}').contains(&character),
            };
        if short_escape.is_none() && !unicode_escape {
            continue;
        }
        out.extend_from_slice(text.as_bytes().get(run_start..index).unwrap_or_default());
        run_start = index + character.len_utf8();
        if let Some(code) = short_escape {
            out.extend_from_slice(&[b'\\', code]);
        } else {
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                push_unicode_escape(out, *unit);
            }
        }
    }
    out.extend_from_slice(text.as_bytes().get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// `\uXXXX` with upper-case hex digits, as fastjson writes it.
fn push_unicode_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"\\u");
    for shift in [12u16, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

fn io_error(error: std::io::Error) -> BodyError {
    BodyError::new(format!("writing a body failed: {error}"))
}

/// The `serialize_*` methods of the integer types that fit an `i128`: each widens its value and
/// hands it to the serializer's own `integer` method, so one rule covers every width.
macro_rules! widened_integers {
    ($integer:ident => $ok:ty) => {
        widened_integers!(@each $integer => $ok;
            serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
            serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
            serialize_u64: u64);
    };
    (@each $integer:ident => $ok:ty; $($method:ident: $int:ty),*) => {$(
        fn $method(self, value: $int) -> Result<$ok, BodyError> {
            self.$integer(i128::from(value))
        }
    )*};
}

/// The value serializer.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    dialect: Dialect,
}

impl Writer<'_> {
    fn integer(self, value: i128) -> Result<(), BodyError> {
        let quoted = self.dialect == Dialect::Standard
            && !(-BROWSER_SAFE_INTEGER..=BROWSER_SAFE_INTEGER).contains(&value);
        if quoted {
            write!(self.out, "\"{value}\"").map_err(io_error)
        } else {
            write!(self.out, "{value}").map_err(io_error)
        }
    }

    fn decimal(self, text: Option<String>) -> Result<(), BodyError> {
        self.out.extend_from_slice(text.as_deref().unwrap_or("null").as_bytes());
        Ok(())
    }

    /// Opens `{"variant":` for an enum variant with content.
    fn open_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        push_string(self.out, variant, self.dialect);
        self.out.push(b':');
    }
}

impl<'o> ser::Serializer for Writer<'o> {
    type Ok = ();
    type Error = BodyError;
    type SerializeSeq = SeqWriter<'o>;
    type SerializeTuple = SeqWriter<'o>;
    type SerializeTupleStruct = SeqWriter<'o>;
    type SerializeTupleVariant = SeqWriter<'o>;
    type SerializeMap = MapWriter<'o>;
    type SerializeStruct = StructWriter<'o>;
    type SerializeStructVariant = StructWriter<'o>;

    fn serialize_bool(self, value: bool) -> Result<(), BodyError> {
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    widened_integers!(integer => ());

    fn serialize_u128(self, value: u128) -> Result<(), BodyError> {
        match i128::try_from(value) {
            Ok(value) => self.integer(value),
            Err(_) if self.dialect == Dialect::Standard => write!(self.out, "\"{value}\"").map_err(io_error),
            Err(_) => write!(self.out, "{value}").map_err(io_error),
        }
    }

    fn serialize_f32(self, value: f32) -> Result<(), BodyError> {
        self.decimal(java_float(value))
    }

    fn serialize_f64(self, value: f64) -> Result<(), BodyError> {
        self.decimal(java_double(value))
    }

    fn serialize_char(self, value: char) -> Result<(), BodyError> {
        push_string(self.out, value.encode_utf8(&mut [0; 4]), self.dialect);
        Ok(())
    }

    fn serialize_str(self, value: &str) -> Result<(), BodyError> {
        push_string(self.out, value, self.dialect);
        Ok(())
    }

    /// `byte[]` is written as a base64 string.
    fn serialize_bytes(self, value: &[u8]) -> Result<(), BodyError> {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(value);
        push_string(self.out, &text, self.dialect);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), BodyError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), BodyError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), BodyError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), BodyError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), BodyError> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), BodyError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), BodyError> {
        self.open_variant(variant);
        value.serialize(Writer { out: &mut *self.out, dialect: self.dialect })?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqWriter<'o>, BodyError> {
        self.out.push(b'[');
        Ok(SeqWriter { out: self.out, dialect: self.dialect, first: true, close_variant: false })
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqWriter<'o>, BodyError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqWriter<'o>, BodyError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<SeqWriter<'o>, BodyError> {
        self.open_variant(variant);
        self.out.push(b'[');
        Ok(SeqWriter { out: self.out, dialect: self.dialect, first: true, close_variant: true })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapWriter<'o>, BodyError> {
        Ok(MapWriter {
            out: self.out,
            dialect: self.dialect,
            entries: Vec::with_capacity(len.unwrap_or(0).min(1024)),
            pending_key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<StructWriter<'o>, BodyError> {
        Ok(StructWriter {
            out: self.out,
            dialect: self.dialect,
            fields: Vec::with_capacity(len.min(64)),
            close_variant: false,
        })
    }

    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<StructWriter<'o>, BodyError> {
        self.open_variant(variant);
        Ok(StructWriter {
            out: self.out,
            dialect: self.dialect,
            fields: Vec::with_capacity(len.min(64)),
            close_variant: true,
        })
    }
}

/// Arrays: elements are written as they come; nulls stay (fastjson keeps them in lists).
struct SeqWriter<'o> {
    out: &'o mut Vec<u8>,
    dialect: Dialect,
    first: bool,
    /// Also close the `{"variant":` of a tuple variant.
    close_variant: bool,
}

impl SeqWriter<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BodyError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Writer { out: &mut *self.out, dialect: self.dialect })
    }

    fn finish(self) -> Result<(), BodyError> {
        self.out.push(b']');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// The four sequence traits of serde differ only in the name of the element method; each hands
/// its elements to [`SeqWriter::element`].
macro_rules! seq_writer_traits {
    ($($trait:ident => $method:ident),* $(,)?) => {$(
        impl ser::$trait for SeqWriter<'_> {
            type Ok = ();
            type Error = BodyError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BodyError> {
                self.element(value)
            }

            fn end(self) -> Result<(), BodyError> {
                self.finish()
            }
        }
    )*};
}

seq_writer_traits! {
    SerializeSeq => serialize_element,
    SerializeTuple => serialize_element,
    SerializeTupleStruct => serialize_field,
    SerializeTupleVariant => serialize_field,
}

/// Serializes `value` on its own, for members that may turn out to be null.
fn value_bytes<T: Serialize + ?Sized>(value: &T, dialect: Dialect) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    value.serialize(Writer { out: &mut bytes, dialect })?;
    Ok(bytes)
}

/// Java beans: members collected, nulls dropped, then written in alphabetical order.
struct StructWriter<'o> {
    out: &'o mut Vec<u8>,
    dialect: Dialect,
    fields: Vec<(&'static str, Vec<u8>)>,
    /// Also close the `{"variant":` of a struct variant.
    close_variant: bool,
}

impl StructWriter<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), BodyError> {
        let bytes = value_bytes(value, self.dialect)?;
        if bytes != b"null" {
            self.fields.push((name, bytes));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), BodyError> {
        // fastjson orders properties by name (String.compareTo; names are ASCII).
        self.fields.sort_by(|left, right| left.0.cmp(right.0));
        self.out.push(b'{');
        for (index, (name, bytes)) in self.fields.iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            push_string(self.out, name, self.dialect);
            self.out.push(b':');
            self.out.extend_from_slice(bytes);
        }
        self.out.push(b'}');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// Struct and struct-variant members both go to [`StructWriter::field`].
macro_rules! struct_writer_traits {
    ($($trait:ident),*) => {$(
        impl ser::$trait for StructWriter<'_> {
            type Ok = ();
            type Error = BodyError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), BodyError> {
                self.field(name, value)
            }

            fn end(self) -> Result<(), BodyError> {
                self.finish()
            }
        }
    )*};
}

struct_writer_traits!(SerializeStruct, SerializeStructVariant);

/// What a map key is, for writing it and for sorting entries in the standard dialect the way a
/// Java `TreeMap` would.
enum KeyKind {
    Text(String),
    Integer(i128),
    Decimal(f64),
    Bool(bool),
    Null,
}

impl KeyKind {
    fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            // Java compares strings by UTF-16 code units.
            (Self::Text(left), Self::Text(right)) => left.encode_utf16().cmp(right.encode_utf16()),
            (Self::Integer(left), Self::Integer(right)) => left.cmp(right),
            (Self::Decimal(left), Self::Decimal(right)) => left.total_cmp(right),
            (Self::Bool(left), Self::Bool(right)) => left.cmp(right),
            _ => Ordering::Equal,
        }
    }
}

/// One written map entry.
struct Entry {
    /// `None` for object and array keys, which keep their order.
    kind: Option<KeyKind>,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Maps: entries collected, null values dropped; sorted by key in the standard dialect.
struct MapWriter<'o> {
    out: &'o mut Vec<u8>,
    dialect: Dialect,
    entries: Vec<Entry>,
    pending_key: Option<(Option<KeyKind>, Vec<u8>)>,
}

impl MapWriter<'_> {
    /// The written form of a key: strings quoted; numbers, booleans and null bare in the
    /// fastjson dialect and quoted in the standard one; objects and arrays written as JSON
    /// (fastjson's own `toJSONString` of the key), bare or as a quoted string.
    fn key_text<T: Serialize + ?Sized>(&self, key: &T) -> Result<(Option<KeyKind>, Vec<u8>), BodyError> {
        let kind = match key.serialize(KeyClassifier) {
            Ok(kind) => kind,
            Err(error) if error.is_compound_key_marker() => {
                let text = value_bytes(key, Dialect::Fastjson)?;
                return Ok((None, self.quote_if_standard(&String::from_utf8_lossy(&text))));
            }
            Err(error) => return Err(error),
        };
        let bytes = match &kind {
            KeyKind::Text(text) => {
                let mut bytes = Vec::with_capacity(text.len() + 2);
                push_string(&mut bytes, text, self.dialect);
                bytes
            }
            KeyKind::Integer(value) => self.quote_if_standard(&value.to_string()),
            KeyKind::Decimal(value) => {
                self.quote_if_standard(java_double(*value).as_deref().unwrap_or("null"))
            }
            KeyKind::Bool(value) => self.quote_if_standard(if *value { "true" } else { "false" }),
            KeyKind::Null => self.quote_if_standard("null"),
        };
        Ok((Some(kind), bytes))
    }

    fn quote_if_standard(&self, text: &str) -> Vec<u8> {
        match self.dialect {
            Dialect::Fastjson => text.as_bytes().to_vec(),
            Dialect::Standard => {
                let mut bytes = Vec::with_capacity(text.len() + 2);
                push_string(&mut bytes, text, Dialect::Standard);
                bytes
            }
        }
    }
}

impl ser::SerializeMap for MapWriter<'_> {
    type Ok = ();
    type Error = BodyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), BodyError> {
        self.pending_key = Some(self.key_text(key)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BodyError> {
        let Some((kind, key)) = self.pending_key.take() else {
            return Err(BodyError::new("a map value was written before its key"));
        };
        let value = value_bytes(value, self.dialect)?;
        // fastjson leaves out map entries whose value is null.
        if value != b"null" {
            self.entries.push(Entry { kind, key, value });
        }
        Ok(())
    }

    fn end(mut self) -> Result<(), BodyError> {
        if self.dialect == Dialect::Standard {
            // MapSortField: a stable sort keeps the given order where keys do not compare.
            self.entries.sort_by(|left, right| match (&left.kind, &right.kind) {
                (Some(left), Some(right)) => left.order(right),
                _ => Ordering::Equal,
            });
        }
        self.out.push(b'{');
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&entry.key);
            self.out.push(b':');
            self.out.extend_from_slice(&entry.value);
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Learns what kind of value a map key is. Objects and arrays are reported with
/// [`BodyError::compound_key_marker`] so the map writer can write them as JSON.
struct KeyClassifier;

type NotAKeyKind = Impossible<KeyKind, BodyError>;

impl KeyClassifier {
    fn integer(self, value: i128) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Integer(value))
    }
}

impl ser::Serializer for KeyClassifier {
    type Ok = KeyKind;
    type Error = BodyError;
    type SerializeSeq = NotAKeyKind;
    type SerializeTuple = NotAKeyKind;
    type SerializeTupleStruct = NotAKeyKind;
    type SerializeTupleVariant = NotAKeyKind;
    type SerializeMap = NotAKeyKind;
    type SerializeStruct = NotAKeyKind;
    type SerializeStructVariant = NotAKeyKind;

    fn serialize_bool(self, value: bool) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Bool(value))
    }

    widened_integers!(integer => KeyKind);

    fn serialize_u128(self, value: u128) -> Result<KeyKind, BodyError> {
        i128::try_from(value)
            .map(KeyKind::Integer)
            .map_err(|_| BodyError::new(format!("map key {value} is too large")))
    }

    fn serialize_f32(self, value: f32) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Decimal(value.into()))
    }

    fn serialize_f64(self, value: f64) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Decimal(value))
    }

    fn serialize_char(self, value: char) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Text(value.to_string()))
    }

    fn serialize_str(self, value: &str) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Text(value.to_owned()))
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<KeyKind, BodyError> {
        use base64::Engine as _;
        Ok(KeyKind::Text(base64::engine::general_purpose::STANDARD.encode(value)))
    }

    fn serialize_none(self) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<KeyKind, BodyError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Null)
    }

    /// Java enum keys are written by name, quoted, in both dialects.
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<KeyKind, BodyError> {
        Ok(KeyKind::Text(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<KeyKind, BodyError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<KeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_tuple(self, _len: usize) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<NotAKeyKind, BodyError> {
        Err(BodyError::compound_key_marker())
    }
}
