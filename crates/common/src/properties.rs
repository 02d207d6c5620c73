//! Java `.properties` text: how RocketMQ's `namesrv.conf`/`broker.conf` files are written and
//! how UPDATE_*_CONFIG / GET_*_CONFIG bodies travel.
//!
//! The subset read is what those files use: one `key=value` (or `key:value`, or
//! `key value`) per line, `#`/`!` comments, surrounding blanks trimmed, a trailing backslash
//! continuing a line, and the escapes `\t \n \r \\ \= \: \uXXXX`.

use std::collections::BTreeMap;

/// Longest text accepted, so a hostile body cannot make us build a huge map.
pub const MAX_PROPERTIES_BYTES: usize = 1024 * 1024;

/// Why properties text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesError(pub String);

impl std::fmt::Display for PropertiesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PropertiesError {}

/// Parses properties text into an ordered map (later duplicates win, as in Java).
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, PropertiesError> {
    if text.len() > MAX_PROPERTIES_BYTES {
        return Err(PropertiesError(format!("properties text longer than {MAX_PROPERTIES_BYTES} bytes")));
    }
    let mut entries = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        let continues = line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1;
        if continues {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_entry(&logical);
        entries.insert(unescape(key)?, unescape(value.trim_start())?);
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_entry(&logical);
        entries.insert(unescape(key)?, unescape(value.trim_start())?);
    }
    Ok(entries)
}

/// Renders entries as `key=value` lines, the way Java's `MixAll.properties2String` does.
pub fn render<'a>(entries: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut text = String::new();
    for (key, value) in entries {
        text.push_str(key);
        text.push('=');
        text.push_str(&value);
        text.push('\n');
    }
    text
}

/// Splits at the first unescaped `=`, `:` or blank.
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (index, character) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match character {
            '\\' => escaped = true,
            '=' | ':' => return (line[..index].trim_end(), &line[index + 1..]),
            ' ' | '\t' => {
                let rest = line[index..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&line[..index], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| PropertiesError(format!("bad \\u escape \\u{hex}")))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_broker_conf_files_contain() {
        let text = "# comment\n! other\nbrokerClusterName = DefaultCluster\nbrokerName=broker-a\n\
                    deleteWhen:04\nnamesrvAddr 127.0.0.1:9876;127.0.0.2:9876\nlong=a\\\n  b\nesc=x\\u0041\\=y\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries["brokerClusterName"], "DefaultCluster");
        assert_eq!(entries["brokerName"], "broker-a");
        assert_eq!(entries["deleteWhen"], "04");
        assert_eq!(entries["namesrvAddr"], "127.0.0.1:9876;127.0.0.2:9876");
        assert_eq!(entries["long"], "ab");
        assert_eq!(entries["esc"], "xA=y");
    }

    #[test]
    fn renders_key_value_lines() {
        assert_eq!(render([("a", "1".to_owned()), ("b", "x".to_owned())]), "a=1\nb=x\n");
    }

    #[test]
    fn refuses_bad_escapes_and_huge_text() {
        assert!(parse("k=\\uZZZZ").is_err());
        assert!(parse(&"k".repeat(MAX_PROPERTIES_BYTES + 1)).is_err());
    }
}
