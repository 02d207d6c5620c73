//! Feeds arbitrary text to the subscription filters, as a hostile consumer would: compiling an
//! SQL92 selector must succeed or fail, never panic or overflow the stack, and evaluating what
//! compiled must answer for any properties; tag expressions likewise.
//!
//! Input layout: the expression, then a NUL byte, then properties as `name=value` lines.
#![no_main]

use apogee_filter::sql::Selector;
use apogee_filter::tags::TagExpression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (expression, properties) = match data.iter().position(|byte| *byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let expression = String::from_utf8_lossy(expression);
    let properties = String::from_utf8_lossy(properties);
    let properties: Vec<(&str, &str)> =
        properties.lines().filter_map(|line| line.split_once('=')).collect();
    let lookup = |name: &str| properties.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);

    if let Ok(selector) = Selector::compile(&expression) {
        let first = selector.matches(&lookup);
        assert_eq!(first, selector.matches(&lookup), "evaluation is deterministic");
    }
    if let Ok(TagExpression::Tags(tags)) = TagExpression::parse(&expression) {
        assert_eq!(tags.iter().count(), tags.codes().count());
    }
});
