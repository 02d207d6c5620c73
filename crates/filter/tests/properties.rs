//! Properties of the filters on text a peer controls: compiling never panics, evaluating never
//! panics, limits refuse rather than overflow; and known answers of behaviour spec §7.

use std::collections::BTreeMap;

use apogee_filter::sql::limits::{MAX_DEPTH, MAX_EXPRESSION_BYTES, MAX_IN_VALUES, MAX_NESTING};
use apogee_filter::sql::Selector;
use apogee_filter::tags::{tag_code, TagExpression};
use proptest::prelude::*;

/// Words of the selector language, so random sequences often get past the lexer and deep
/// into the parser.
const VOCABULARY: &[&str] = &[
    "(",
    ")",
    "a",
    "b",
    "TAGS",
    "=",
    "<>",
    ">",
    ">=",
    "<",
    "<=",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "BETWEEN",
    "IN",
    ",",
    "'x'",
    "'10'",
    "''",
    "0",
    "1",
    "10",
    "2.5",
    ".5e3",
    "3000000000",
    "10L",
    "-",
    "+",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
    "--",
    "/*",
    "*/",
    "'",
];

/// Property values that exercise each conversion: ints, longs, doubles, booleans, text.
const VALUES: &[&str] =
    &["1", "10", "-3", "2.5", " 7 ", "1e3", "5d", "3000000000", "true", "FALSE", "abc", "", "NaN", "x"];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCABULARY), 0..40).prop_map(|words| words.join(" "))
}

fn property_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(&["a", "b", "TAGS"][..]).prop_map(str::to_owned),
        prop::sample::select(VALUES).prop_map(str::to_owned),
        0..3,
    )
}

/// Well-formed selectors: every comparison form, joined by AND, OR and NOT.
fn selector() -> impl Strategy<Value = String> {
    let name = prop::sample::select(&["a", "b", "TAGS"][..]);
    let literal = prop::sample::select(&["1", "10", "2.5", "-4", "3000000000", "'10'", "'abc'", "TRUE"][..]);
    let operator = prop::sample::select(&["=", "<>", ">", ">=", "<", "<="][..]);
    let leaf = prop_oneof![
        (name.clone(), operator, literal)
            .prop_map(|(name, operator, literal)| format!("{name} {operator} {literal}")),
        (name.clone(), any::<bool>())
            .prop_map(|(name, not)| format!("{name} IS {}NULL", if not { "NOT " } else { "" })),
        (name.clone(), any::<bool>())
            .prop_map(|(name, not)| format!("{name} {}IN ('1', 'abc', 'x')", if not { "NOT " } else { "" })),
        (name.clone(), any::<bool>(), -5i32..5, 0i32..20).prop_map(|(name, not, low, high)| format!(
            "{name} {}BETWEEN {low} AND {high}",
            if not { "NOT " } else { "" }
        )),
        (name.clone(), prop::sample::select(&["CONTAINS", "STARTSWITH", "ENDSWITH"][..]))
            .prop_map(|(name, test)| format!("{name} {test} 'b'")),
        prop::sample::select(&["TRUE", "FALSE", "NULL", "a"][..]).prop_map(str::to_owned),
    ];
    leaf.prop_recursive(6, 64, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("({left}) AND ({right})")),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("{left} OR {right}")),
            inner.prop_map(|operand| format!("NOT ({operand})")),
        ]
    })
}

fn matches(selector: &Selector, properties: &BTreeMap<String, String>) -> bool {
    selector.matches(&|name: &str| properties.get(name).map(String::as_str))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn compiling_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Selector::compile(&text);
    }

    #[test]
    fn compiling_and_evaluating_token_soup_never_panics(text in token_soup(), properties in property_map()) {
        if let Ok(selector) = Selector::compile(&text) {
            matches(&selector, &properties);
        }
    }

    #[test]
    fn well_formed_selectors_compile_and_evaluate(text in selector(), properties in property_map()) {
        // Some are refused (`TRUE = 1` style comparisons); none may panic.
        if let Ok(selector) = Selector::compile(&text) {
            let first = matches(&selector, &properties);
            prop_assert_eq!(first, matches(&selector, &properties), "evaluation is deterministic");
        }
    }

    #[test]
    fn negation_is_the_complement_when_defined(text in selector(), properties in property_map()) {
        // Three-valued logic: `x` and `NOT (x)` are never both true.
        if let (Ok(plain), Ok(negated)) = (Selector::compile(&text), Selector::compile(&format!("NOT ({text})"))) {
            prop_assert!(!(matches(&plain, &properties) && matches(&negated, &properties)));
        }
    }

    #[test]
    fn tag_parsing_never_panics_and_agrees_with_itself(text in "[a-c |*]{0,12}") {
        match TagExpression::parse(&text) {
            Ok(TagExpression::All) => prop_assert!(text.is_empty() || text == "*"),
            Ok(TagExpression::Tags(tags)) => {
                for tag in tags.iter() {
                    prop_assert!(!tag.is_empty() && tag.trim() == tag && !tag.contains("||"));
                }
                prop_assert_eq!(tags.codes().count(), tags.iter().count());
            }
            Err(_) => prop_assert!(text.split("||").all(str::is_empty)),
        }
    }
}

/// Runs `check` on a thread with a small stack, so an unbounded recursion fails the test by
/// overflowing instead of passing on a large main-thread stack.
fn on_small_stack(check: impl FnOnce() + Send + 'static) {
    let worker = std::thread::Builder::new().stack_size(512 * 1024).spawn(check).unwrap();
    worker.join().unwrap();
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    on_small_stack(|| {
        for depth in [MAX_NESTING + 1, 1_000, 60_000] {
            let parentheses = format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
            assert!(Selector::compile(&parentheses).is_err(), "{depth} parentheses");
            let unclosed = "(".repeat(depth);
            assert!(Selector::compile(&unclosed).is_err());
            let nots = format!("{}a", "NOT ".repeat(depth));
            assert!(Selector::compile(&nots).is_err(), "{depth} NOTs");
            let minus = format!("{}1 = a", "-".repeat(depth));
            assert!(Selector::compile(&minus).is_err(), "{depth} minus signs");
        }
        let chain = vec!["a = 1"; MAX_DEPTH + 1].join(" AND ");
        assert!(Selector::compile(&chain).is_err());
        let comparisons = format!("a{}", " > 1".repeat(MAX_DEPTH + 1));
        assert!(Selector::compile(&comparisons).is_err());
    });
}

#[test]
fn nested_betweens_cost_what_they_are_long() {
    // Each level used to copy its operand into two comparisons, doubling the tree per level.
    on_small_stack(|| {
        let mut text = "a".to_owned();
        // Two levels of nesting per BETWEEN: the minus sign and the parenthesis.
        for _ in 0..(MAX_NESTING / 2 - 1) {
            text = format!("-({text} BETWEEN 1 AND 2)");
        }
        let selector = Selector::compile(&format!("{text} IS NULL")).expect("within the limits");
        let debug_size_bytes = format!("{selector:?}").len();
        assert!(
            debug_size_bytes < 64 * text.len(),
            "{debug_size_bytes} bytes of tree for {} of text",
            text.len()
        );
        // The innermost BETWEEN is true, its negation null, and null stays null outwards.
        assert!(selector.matches(&|_: &str| Some("1")));
    });
}

#[test]
fn length_and_in_list_limits() {
    let long = format!("a = '{}'", "x".repeat(MAX_EXPRESSION_BYTES));
    assert!(Selector::compile(&long).unwrap_err().to_string().contains("longer than"));
    let list = |count: usize| format!("a IN ({})", vec!["'v'"; count].join(", "));
    assert!(Selector::compile(&list(MAX_IN_VALUES)).is_ok());
    assert!(Selector::compile(&list(MAX_IN_VALUES + 1)).unwrap_err().to_string().contains("IN list"));
}

/// Known answers of behaviour spec §7.2.
#[test]
fn spec_known_answers() {
    let message: BTreeMap<String, String> =
        [("a", "10"), ("price", "10.5"), ("s", "hello"), ("TAGS", "TagA"), ("flag", "true")]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
    let cases: &[(&str, bool)] = &[
        // Conversion: an int literal parses the property as an int, so 10.5 = 5 is an error.
        ("price = 5", false),
        ("price = 10.5", true),
        ("price > 10", false),
        ("price > 10.0", true),
        ("a >= 10 AND a <= 10", true),
        ("a BETWEEN 10 AND 20", true),
        ("a NOT BETWEEN 10 AND 20", false),
        // Missing property: null; <> is NOT(=), so no match either way.
        ("missing = 1", false),
        ("missing <> 1", false),
        ("missing IS NULL", true),
        ("a IS NOT NULL", true),
        ("missing IN ('x')", false),
        ("missing NOT IN ('x')", false),
        // Text tests: missing or empty search is false, never null.
        ("missing NOT CONTAINS 'x'", false),
        ("s CONTAINS ''", false),
        ("s STARTSWITH 'he' AND s ENDSWITH 'lo'", true),
        ("TAGS IN ('TagA', 'TagB')", true),
        // Three-valued logic.
        ("missing = 1 OR a = 10", true),
        ("missing = 1 AND a = 10", false),
        ("NOT (missing = 1)", false),
        // A bare property is never true; a boolean literal is.
        ("flag", false),
        ("flag = TRUE", true),
        ("TRUE", true),
        // Two properties order as the doubles they spell, or not at all.
        ("price > a", true),
        ("s > a", false),
        ("Flag IS NULL", true),
    ];
    for (text, expected) in cases {
        let selector = Selector::compile(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        assert_eq!(matches(&selector, &message), *expected, "{text}");
    }
    for refused in ["a = NULL", "a > 'x'", "a BETWEEN 2 AND 1", "'x' IN ('x')", "1", "a != 1", "a LIKE 'x'"] {
        assert!(Selector::compile(refused).is_err(), "{refused}");
    }
}

/// Known answers of behaviour spec §7.1.
#[test]
fn tag_known_answers() {
    assert_eq!(TagExpression::parse("*"), Ok(TagExpression::All));
    assert_eq!(TagExpression::parse(""), Ok(TagExpression::All));
    assert!(TagExpression::parse("||").is_err());
    let Ok(TagExpression::Tags(tags)) = TagExpression::parse("TagA || TagB") else { panic!("tags") };
    assert_eq!(tags.iter().collect::<Vec<_>>(), ["TagA", "TagB"]);
    assert_eq!(tag_code("TagA"), 2_598_919);
    assert_eq!(tag_code("Aa"), tag_code("BB"), "codes collide; clients re-check the strings");
}
