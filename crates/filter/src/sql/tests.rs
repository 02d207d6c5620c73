//! Known answers of the selector language, moved with it from the broker.

use super::limits::{MAX_DEPTH, MAX_NESTING};
use super::Selector;

fn run(selector: &str, properties: &[(&str, &str)]) -> bool {
    let selector = Selector::compile(selector).unwrap_or_else(|error| panic!("{selector}: {error}"));
    selector.matches(&|name: &str| properties.iter().find(|(key, _)| *key == name).map(|(_, value)| *value))
}

#[test]
fn comparisons_convert_property_strings() {
    let message = [("a", "10"), ("b", "abc"), ("c", "10.5"), ("flag", "true"), ("TAGS", "TagA")];
    assert!(run("a = 10", &message));
    assert!(run("a > 5 AND a < 11", &message));
    assert!(run("a >= 10 and a <= 10", &message));
    assert!(run("a BETWEEN 1 AND 10", &message));
    assert!(!run("a NOT BETWEEN 1 AND 10", &message));
    assert!(run("c > 10.4", &message));
    assert!(!run("c = 5", &message), "an int literal parses the property as an int: error");
    assert!(run("c = 10.5", &message));
    assert!(run("b = 'abc'", &message));
    assert!(run("b <> 'abd'", &message));
    assert!(!run("b > 1", &message), "not numeric: error");
    assert!(run("flag = TRUE", &message));
    assert!(run("TAGS IN ('TagA', 'TagB')", &message));
    assert!(!run("TAGS NOT IN ('TagA')", &message));
    assert!(run("a > -5", &message));
    assert!(run("a = 10 OR missing = 1", &message));
    assert!(run("TRUE", &message));
    assert!(!run("FALSE OR NULL", &message));
    assert!(run("'10' = a", &message));
    assert!(run("a = 10L", &message));
    assert!(run("a < 3000000000", &message));
}

#[test]
fn missing_properties_are_unknown() {
    let message = [("a", "1")];
    assert!(!run("missing = 1", &message));
    assert!(!run("missing <> 1", &message));
    assert!(!run("NOT (missing = 1)", &message));
    assert!(run("missing IS NULL", &message));
    assert!(run("a IS NOT NULL", &message));
    assert!(!run("missing IN ('x')", &message));
    assert!(!run("missing NOT IN ('x')", &message));
    assert!(!run("missing CONTAINS 'x'", &message));
    assert!(!run("missing NOT CONTAINS 'x'", &message));
    assert!(run("missing = 1 OR a = 1", &message));
    assert!(!run("missing = 1 AND a = 1", &message));
    assert!(!run("a", &message), "a bare property is never true");
}

#[test]
fn text_tests() {
    let message = [("s", "hello world")];
    assert!(run("s CONTAINS 'lo w'", &message));
    assert!(run("s STARTSWITH 'hell'", &message));
    assert!(run("s ENDSWITH 'world'", &message));
    assert!(run("s NOT STARTSWITH 'world'", &message));
    assert!(!run("s CONTAINS ''", &message));
    assert!(!run("s NOT CONTAINS ''", &message));
}

#[test]
fn syntax_and_comments() {
    let message = [("a", "1"), ("b", "it's")];
    assert!(run("a = 1 -- trailing comment", &message));
    assert!(run("/* lead */ a = 1", &message));
    assert!(run("b = 'it''s'", &message));
    assert!(run("A_b$ IS NULL", &message));
    assert!(run("a = 1 and not (a = 2)", &message));
    assert!(run("a = .1e1", &message));
    assert!(run("a = 1.", &message));
    assert!(run("a = 0.1E+1", &message));
    assert!(run("x = 5.E1", &[("x", "50")]));
}

#[test]
fn compile_errors() {
    for bad in [
        "a > 'x'",
        "a > TRUE",
        "a = NULL",
        "NULL = a",
        "TRUE = 1",
        "'a' IN ('b')",
        "a BETWEEN 5 AND 1",
        "a BETWEEN NULL AND 1",
        "1",
        "'text'",
        "a != 1",
        "a LIKE 'x'",
        "a * 2 = 2",
        "a = 0.0",
        "a = 007",
        "a = 'open",
        "(a = 1",
        "a = 1 a = 2",
        "a = 1 AND 2",
        "a = 99999999999999999999",
        "/* open",
        "a = 1e",
        "-a",
        "a > 1 > 2",
    ] {
        assert!(Selector::compile(bad).is_err(), "{bad} compiled");
    }
}

#[test]
fn depth_is_bounded() {
    let deep = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Selector::compile(&deep).is_err());
    let long = vec!["a = 1"; 10_000].join(" AND ");
    assert!(Selector::compile(&long).is_err());
    let fine = vec!["a = 1"; 100].join(" OR ");
    assert!(run(&fine, &[("a", "1")]));
}

#[test]
fn the_largest_accepted_selectors_fit_a_small_stack() {
    // A quarter of the 2 MiB stack of the threads that compile and evaluate selectors.
    let worker = std::thread::Builder::new().stack_size(512 * 1024).spawn(|| {
        let nested = format!("{}a = 1{}", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
        let negated = format!("{}a", "NOT ".repeat(MAX_NESTING - 1));
        let chain = vec!["a = 1"; MAX_DEPTH - 1].join(" AND ");
        let message = [("a", "1")];
        (run(&nested, &message), Selector::compile(&negated).is_ok(), run(&chain, &message))
    });
    assert_eq!(worker.unwrap().join().unwrap(), (true, true, true));
}
