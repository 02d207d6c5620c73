//! ACL 1.0 request signing (spec §5): the `AccessKey`/`Signature` extFields that Java, Go
//! and C++ clients add to every request when they have credentials, and their verification.
//!
//! The signed content is the values of every extFields entry except `Signature`, in Java
//! `TreeMap` key order, concatenated without separators, UTF-8 encoded, followed by the raw
//! body. The signature is Base64(HMAC-SHA1(secret key, content)).

use std::cmp::Ordering;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::code::response_code;
use crate::command::RemotingCommand;

/// extFields key of the access key (the user name).
pub const ACCESS_KEY: &str = "AccessKey";
/// extFields key of the signature.
pub const SIGNATURE: &str = "Signature";
/// extFields key of the optional STS token.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// extFields key that clients up to V4_9_3 add to QUERY_MESSAGE after signing.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// Highest request version (V4_9_3) whose `_UNIQUE_KEY_QUERY` is left out on verification.
const UNIQUE_KEY_QUERY_QUIRK_MAX_VERSION: i32 = 399;

/// The credentials a client signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    /// Sent in clear as `AccessKey`; names the user.
    pub access_key: String,
    /// The HMAC key; never sent.
    pub secret_key: String,
    /// Sent as `SecurityToken` and signed, when present.
    pub security_token: Option<String>,
}

impl SessionCredentials {
    /// Credentials without a security token.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self { access_key: access_key.into(), secret_key: secret_key.into(), security_token: None }
    }
}

impl fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("SessionCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("security_token", &self.security_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a request's signature was refused. The `Display` text is what a 5.x broker puts in
/// the remark of its NO_PERMISSION (16) response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The request carries no `Signature`.
    #[error("check signature failed.")]
    MissingSignature,
    /// The `Signature` does not match the content and the user's secret key.
    #[error("check signature failed.")]
    SignatureMismatch,
}

impl AclError {
    /// The response code to answer a refused request with.
    pub fn response_code(&self) -> i32 {
        response_code::NO_PERMISSION
    }
}

/// Signs `command`: adds `AccessKey` (and `SecurityToken`), then `Signature` computed over
/// every other extFields value and the body. Call it after the custom header has been
/// written into extFields and after every other key has been added.
pub fn sign(command: &mut RemotingCommand, credentials: &SessionCredentials) {
    let fields = command.ext_fields_mut();
    fields.insert(ACCESS_KEY, credentials.access_key.as_str());
    if let Some(token) = &credentials.security_token {
        fields.insert(SECURITY_TOKEN, token.as_str());
    }
    let signature = signature_of(&signature_content(command), &credentials.secret_key);
    command.ext_fields_mut().insert(SIGNATURE, signature);
}

/// The bytes a client signs: extFields values (all but `Signature`) in key order, then the
/// body.
pub fn signature_content(command: &RemotingCommand) -> Vec<u8> {
    content_without(command, |key| key == SIGNATURE)
}

/// Checks the `Signature` of a received request against `secret_key`, the secret of the
/// user named by its [`access_key`]. Exactly the received extFields are used, except that
/// `_UNIQUE_KEY_QUERY` is left out for requests of version ≤ 399, whose clients add it after
/// signing. The comparison takes the same time wherever the signatures differ.
pub fn verify(command: &RemotingCommand, secret_key: &str) -> Result<(), AclError> {
    let received = command.ext(SIGNATURE).ok_or(AclError::MissingSignature)?;
    let quirk = command.version <= UNIQUE_KEY_QUERY_QUIRK_MAX_VERSION;
    let content = content_without(command, |key| key == SIGNATURE || (quirk && key == UNIQUE_KEY_QUERY));
    let expected = signature_of(&content, secret_key);
    if bool::from(expected.as_bytes().ct_eq(received.as_bytes())) {
        Ok(())
    } else {
        Err(AclError::SignatureMismatch)
    }
}

/// The access key of a request, or `None` for an anonymous one. C++ clients send an empty
/// `AccessKey` when they have no credentials; that is anonymous too.
pub fn access_key(command: &RemotingCommand) -> Option<&str> {
    command.ext(ACCESS_KEY).filter(|key| !key.is_empty())
}

/// Base64(HMAC-SHA1(secret_key, content)), standard alphabet with padding.
pub fn signature_of(content: &[u8], secret_key: &str) -> String {
    BASE64.encode(hmac_sha1(content, secret_key))
}

/// Length of an HMAC-SHA1 digest in bytes.
pub const HMAC_SHA1_BYTES: usize = 20;

/// HMAC-SHA1(secret_key, content): the digest both ACL 1.0 signatures are made of (Base64
/// of it over extFields and body on remoting, hex of it over `x-mq-date-time` on gRPC).
pub fn hmac_sha1(content: &[u8], secret_key: &str) -> [u8; HMAC_SHA1_BYTES] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()) else {
        return [0; HMAC_SHA1_BYTES];
    };
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// Whether `received` is HMAC-SHA1(secret_key, content), compared in constant time.
pub fn digest_matches(content: &[u8], secret_key: &str, received: &[u8]) -> bool {
    bool::from(hmac_sha1(content, secret_key).as_slice().ct_eq(received))
}

/// The signed content, leaving out the keys `skip` selects.
fn content_without(command: &RemotingCommand, skip: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut entries: Vec<(&str, &str)> =
        command.ext_fields.iter().flat_map(|fields| fields.iter()).filter(|(key, _)| !skip(key)).collect();
    entries.sort_by(|left, right| java_string_order(left.0, right.0));
    let values_len: usize = entries.iter().map(|(_, value)| value.len()).sum();
    let mut content = Vec::with_capacity(values_len + command.body.len());
    for (_, value) in entries {
        content.extend_from_slice(value.as_bytes());
    }
    content.extend_from_slice(&command.body);
    content
}

/// Java's `String.compareTo`: UTF-16 code unit order. It differs from byte order only for
/// keys mixing characters above U+FFFF with ones in U+E000..=U+FFFF.
fn java_string_order(left: &str, right: &str) -> Ordering {
    left.encode_utf16().cmp(right.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::RemotingCommand;

    fn credentials() -> SessionCredentials {
        SessionCredentials {
            access_key: "RocketMQ".into(),
            secret_key: "12345678".into(),
            security_token: Some("tok".into()),
        }
    }

    fn request() -> RemotingCommand {
        RemotingCommand::request(10)
            .with_ext("topic", "TopicTest")
            .with_ext("queueId", "3")
            .with_ext("b", "é")
            .with_body(&b"hello"[..])
    }

    #[test]
    fn signed_content_is_sorted_values_then_body() {
        let mut command = request();
        sign(&mut command, &credentials());
        // Keys in order: AccessKey, SecurityToken, b, queueId, topic (Signature left out).
        assert_eq!(signature_content(&command), "RocketMQtok\u{e9}3TopicTesthello".as_bytes());
    }

    #[test]
    fn signature_matches_an_independent_hmac_sha1() {
        // Computed with Python 3:
        //   content = "RocketMQ" + "tok" + "é" + "3" + "TopicTest" (UTF-8) + b"hello"
        //   base64.b64encode(hmac.new(b"12345678", content, hashlib.sha1).digest())
        let mut command = request();
        sign(&mut command, &credentials());
        assert_eq!(command.ext(ACCESS_KEY), Some("RocketMQ"));
        assert_eq!(command.ext(SECURITY_TOKEN), Some("tok"));
        assert_eq!(command.ext(SIGNATURE), Some("XpPjVv8ik+y2Q4D8nTHaCMAEoR0="));
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let mut command = request();
        sign(&mut command, &SessionCredentials::new("ak", "sk"));
        assert_eq!(access_key(&command), Some("ak"));
        assert_eq!(verify(&command, "sk"), Ok(()));
        // Signing again (a retried request) replaces the old signature.
        sign(&mut command, &SessionCredentials::new("ak", "sk"));
        assert_eq!(verify(&command, "sk"), Ok(()));
    }

    #[test]
    fn tampering_fails_verification() {
        let mut signed = request();
        sign(&mut signed, &credentials());

        let mut value_changed = signed.clone();
        value_changed.ext_fields_mut().insert("queueId", "4");
        let mut key_added = signed.clone();
        key_added.ext_fields_mut().insert("extra", "x");
        let body_changed = signed.clone().with_body(&b"hellO"[..]);
        let mut signature_changed = signed.clone();
        signature_changed.ext_fields_mut().insert(SIGNATURE, "XpPjVv8ik+y2Q4D8nTHaCMAEoR1=");
        let mut signature_removed = signed.clone();
        signature_removed.ext_fields_mut().remove(SIGNATURE);

        assert_eq!(verify(&signed, "12345678"), Ok(()));
        assert_eq!(verify(&signed, "12345679"), Err(AclError::SignatureMismatch));
        assert_eq!(verify(&value_changed, "12345678"), Err(AclError::SignatureMismatch));
        assert_eq!(verify(&key_added, "12345678"), Err(AclError::SignatureMismatch));
        assert_eq!(verify(&body_changed, "12345678"), Err(AclError::SignatureMismatch));
        assert_eq!(verify(&signature_changed, "12345678"), Err(AclError::SignatureMismatch));
        assert_eq!(verify(&signature_removed, "12345678"), Err(AclError::MissingSignature));
        assert_eq!(AclError::SignatureMismatch.to_string(), "check signature failed.");
        assert_eq!(AclError::SignatureMismatch.response_code(), response_code::NO_PERMISSION);
    }

    #[test]
    fn unique_key_query_added_after_signing_is_ignored_only_for_old_clients() {
        let credentials = SessionCredentials::new("ak", "sk");
        let mut old = RemotingCommand::request(12).with_ext("topic", "T").with_ext("key", "k");
        old.version = 399;
        sign(&mut old, &credentials);
        old.ext_fields_mut().insert(UNIQUE_KEY_QUERY, "true");
        assert_eq!(verify(&old, "sk"), Ok(()));

        let mut new = RemotingCommand::request(12).with_ext("topic", "T").with_ext("key", "k");
        new.version = 401;
        sign(&mut new, &credentials);
        new.ext_fields_mut().insert(UNIQUE_KEY_QUERY, "true");
        assert_eq!(verify(&new, "sk"), Err(AclError::SignatureMismatch));

        // A new client signs the key itself; it stays in the content.
        let mut signed_with_key = RemotingCommand::request(12).with_ext(UNIQUE_KEY_QUERY, "true");
        sign(&mut signed_with_key, &credentials);
        assert_eq!(verify(&signed_with_key, "sk"), Ok(()));
        assert!(signature_content(&signed_with_key).starts_with(b"aktrue"));
    }

    #[test]
    fn anonymous_requests_have_no_access_key() {
        assert_eq!(access_key(&RemotingCommand::request(10)), None);
        assert_eq!(access_key(&RemotingCommand::request(10).with_ext(ACCESS_KEY, "")), None);
    }

    #[test]
    fn keys_sort_in_java_utf16_order() {
        // U+1F600 is a surrogate pair (0xD83D...) in UTF-16, so Java puts it before U+FFFD
        // although its UTF-8 bytes sort after.
        let command =
            RemotingCommand::request(10).with_ext("\u{FFFD}", "second").with_ext("\u{1F600}", "first");
        assert_eq!(signature_content(&command), b"firstsecond");
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", credentials());
        assert!(!text.contains("12345678"));
        assert!(!text.contains("tok\""));
    }
}
