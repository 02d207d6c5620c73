//! Java's `String.hashCode`, which RocketMQ uses for tag codes in consume queues and
//! subscription `codeSet`s; any other hash would make our filters disagree with Java clients.

/// `String.hashCode()` of Java: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units,
/// wrapping in 32-bit two's complement.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

#[cfg(test)]
mod tests {
    use super::java_string_hash;

    #[test]
    fn matches_java_for_known_strings() {
        // Reference values of Java's "TagA".hashCode() and friends.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("hello"), 99162322);
        // Non-BMP characters hash as two UTF-16 surrogates.
        assert_eq!(java_string_hash("\u{1F600}"), 1772899);
    }
}
