//! Typed custom headers: structs that travel as a command's `extFields` (spec §1.6).
//!
//! A header is declared once with [`command_header!`], naming each field's wire key. A
//! field of type `T` is required (Java `@CFNotNull`); `Option<T>` is optional. Values are
//! Java `toString()` text: decimal numbers, `true`/`false`, enum constant names. Keys the
//! struct does not name are ignored on decode, as every peer adds some (`AccessKey`, `bname`...).

pub mod admin;
pub mod consumer;
pub mod namesrv;
pub mod pop;
pub mod send;
#[cfg(test)]
pub mod testkit;
mod value;

pub use value::HeaderValue;

use crate::command::{ExtFields, RemotingCommand};

/// Why a custom header could not be decoded. The remark a Java broker would give for a
/// missing required field is `the custom field <name> is null`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required key is absent.
    #[error("the custom field {0} is null")]
    Missing(&'static str),
    /// A key is present but its text does not parse as the field's type.
    #[error("the custom field {key} has an invalid value {value:?}")]
    Invalid {
        /// Wire key.
        key: &'static str,
        /// Text received.
        value: String,
    },
}

/// One key of a header as the wire sees it. Lets a test hold every header against the Java
/// class it mirrors without restating the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderKey {
    /// Key in `extFields`, the Java field name.
    pub name: &'static str,
    /// Whether decoding fails without the key (Java `@CFNotNull`).
    pub required: bool,
}

/// A struct carried in `extFields`.
pub trait CommandHeader: Sized {
    /// Every key the header reads and writes, in declaration order.
    const KEYS: &'static [HeaderKey];
    /// Writes every non-null field into `fields`.
    fn encode(&self, fields: &mut ExtFields);
    /// Reads the struct back; unknown keys are ignored.
    fn decode(fields: &ExtFields) -> Result<Self, HeaderError>;
}

/// How one header field is read and written: required for plain values, optional for
/// `Option`s. Implemented for every [`HeaderValue`] and `Option` of one.
pub trait HeaderField: Sized {
    /// Whether [`HeaderField::from_field`] fails when the key is absent.
    const REQUIRED: bool;

    /// Writes the field under `key` unless it is null.
    fn put(&self, key: &'static str, fields: &mut ExtFields);

    /// Reads the field from `text`, the value of `key` (`None` when absent).
    fn from_field(key: &'static str, text: Option<&str>) -> Result<Self, HeaderError>;
}

impl<T: HeaderValue> HeaderField for T {
    const REQUIRED: bool = true;

    fn put(&self, key: &'static str, fields: &mut ExtFields) {
        self.with_text(|text| fields.insert(key, text));
    }

    fn from_field(key: &'static str, text: Option<&str>) -> Result<Self, HeaderError> {
        let text = text.ok_or(HeaderError::Missing(key))?;
        T::from_text(text).ok_or_else(|| HeaderError::Invalid { key, value: text.to_owned() })
    }
}

impl<T: HeaderValue> HeaderField for Option<T> {
    const REQUIRED: bool = false;

    fn put(&self, key: &'static str, fields: &mut ExtFields) {
        if let Some(value) = self {
            value.put(key, fields);
        }
    }

    fn from_field(key: &'static str, text: Option<&str>) -> Result<Self, HeaderError> {
        match text {
            None => Ok(None),
            Some(text) => T::from_text(text)
                .map(Some)
                .ok_or_else(|| HeaderError::Invalid { key, value: text.to_owned() }),
        }
    }
}

/// Declares a header struct and its [`CommandHeader`] impl from `field: Type => "wireKey"`
/// lines. Every field is public; the struct derives `Debug, Clone, PartialEq, Default`.
///
/// `pub struct Name: RpcRequestHeader { ... }` declares a request whose Java class extends
/// `RpcRequestHeader`: the 5.x `bname` key follows the listed fields.
#[macro_export]
macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident: RpcRequestHeader {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty => $key:literal ),* $(,)?
        }
    ) => {
        $crate::command_header! {
            $(#[$meta])*
            pub struct $name {
                $( $(#[$field_meta])* $field: $ty => $key, )*
                /// 5.x (Java `RpcRequestHeader`): name of the broker the request is addressed to.
                bname: Option<String> => "bname",
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty => $key:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::header::CommandHeader for $name {
            const KEYS: &'static [$crate::header::HeaderKey] = &[$(
                $crate::header::HeaderKey {
                    name: $key,
                    required: <$ty as $crate::header::HeaderField>::REQUIRED,
                },
            )*];

            #[allow(unused_variables)]
            fn encode(&self, fields: &mut $crate::command::ExtFields) {
                $( $crate::header::HeaderField::put(&self.$field, $key, fields); )*
            }


            /// One pass over the fields, each key matched against the struct's keys (a
            /// request header is decoded for every request; a lookup per field cost more).
            #[allow(unused_variables, unused_mut)]
            fn decode(
                fields: &$crate::command::ExtFields,
            ) -> ::std::result::Result<Self, $crate::header::HeaderError> {
                $( let mut $field: ::std::option::Option<&str> = None; )*
                for (key, value) in fields.iter() {
                    match key {
                        $( $key => $field = Some(value), )*
                        _ => {}
                    }
                }
                Ok(Self { $( $field: $crate::header::HeaderField::from_field($key, $field)?, )* })
            }
        }
    };
}

impl RemotingCommand {
    /// Decodes the custom header; an absent `extFields` reads as an empty map.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        match &self.ext_fields {
            Some(fields) => H::decode(fields),
            None => H::decode(&ExtFields::default()),
        }
    }

    /// Writes `header` into `extFields` (creating the map, so that even an empty header
    /// is sent as `"extFields":{}` the way Java sends it).
    pub fn with_header<H: CommandHeader>(mut self, header: &H) -> Self {
        header.encode(self.ext_fields_mut());
        self
    }
}
