//! The two ways an alert is read give the same result: `Alert::from_json_str` (one pass over
//! the text, no `Value`) and `Alert::from_value(serde_json::from_str(text)?)`; and so do the
//! two ways a Graph page is read (`graph::parse_page`, which takes the one-pass way when it
//! can, and `graph::page_from_value`). Checked on the sample alerts (the documented page, the
//! simulator's alerts are checked in cli/src/bench.rs, the fuzz corpus when present) and on
//! generated texts, including what a `Value` cannot show: duplicated members, escapes, lone
//! surrogates, numbers out of range, nesting at the recursion limit.

use proptest::prelude::*;
use serde_json::Value;

use shared::adapters::graph::{page_from_value, parse_page};
use shared::domain::alert::{read_page, Alert};
use shared::domain::classify::{lowercases_to, same_lowercase};
use shared::ports::FetchedItem;

/// What `from_json_str` must equal: the `Value` path, with its "not JSON" wording.
fn value_path(text: &str) -> Result<Alert, String> {
    match serde_json::from_str::<Value>(text) {
        Err(e) => Err(format!("alert is not JSON: {e}")),
        Ok(v) => Alert::from_value(v).map_err(|m| m.reason),
    }
}

/// Member names the generator uses, so lookups of names an entry lacks (or had only in an
/// earlier duplicate) are asked too.
const KEYS: [&str; 12] = [
    "@odata.type",
    "rbacGroupName",
    "displayName",
    "mdeDeviceId",
    "userAccount",
    "userPrincipalName",
    "fileDetails",
    "sha256",
    "url",
    "roles",
    "x",
    "nope",
];

/// Same alert, and every evidence accessor answers the same for every name.
fn assert_same_alert(fast: &Alert, slow: &Alert, text: &str) {
    assert_eq!(fast, slow, "{text}");
    assert_eq!(fast.raw.to_string(), slow.raw.to_string());
    let (fe, se): (Vec<_>, Vec<_>) = (fast.evidence().collect(), slow.evidence().collect());
    assert_eq!(fe.len(), se.len(), "{text}");
    for (f, s) in fe.iter().zip(&se) {
        assert_eq!(f.kind(), s.kind(), "{text}");
        assert_eq!(f.raw(), s.raw(), "{text}");
        let mut outer: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        if let Some(o) = s.raw().as_object() {
            outer.extend(o.keys().cloned());
        }
        for k in &outer {
            assert_eq!(f.str(k), s.str(k), "str({k}) in {text}");
            let mut inner: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
            if let Some(o) = s.raw().get(k).and_then(Value::as_object) {
                inner.extend(o.keys().cloned());
            }
            for k2 in &inner {
                assert_eq!(
                    f.nested_str(k, k2),
                    s.nested_str(k, k2),
                    "nested_str({k}, {k2}) in {text}"
                );
            }
        }
    }
}

/// Checks one alert text; returns whether the one-pass path took it.
fn check_alert_text(text: &str) -> bool {
    let fast = Alert::from_json_str(text);
    let slow = value_path(text);
    match (&fast, &slow) {
        (Ok(f), Ok(s)) => assert_same_alert(f, s, text),
        (Err(f), Err(s)) => assert_eq!(&f.reason, s, "{text}"),
        _ => panic!("paths disagree on {text}:\nfast {fast:?}\nslow {slow:?}"),
    }
    matches!(&fast, Ok(a) if a.raw.text().is_some())
}

/// The page as the client read it before the one-pass path (and still does for pages it
/// cannot take).
fn slow_page(body: &[u8]) -> anyhow::Result<shared::adapters::graph::GraphPage> {
    let page: Value = serde_json::from_slice(body)
        .map_err(|e| anyhow::anyhow!("Graph answered with a page that is not JSON: {e}"))?;
    page_from_value(&page)
}

/// Checks one page body; returns whether the one-pass path took it.
fn check_page(body: &[u8]) -> bool {
    let name = String::from_utf8_lossy(body);
    let fast = parse_page(body);
    let slow = slow_page(body);
    match (&fast, &slow) {
        (Ok(f), Ok(s)) => {
            assert_eq!(f.next_link, s.next_link, "{name}");
            assert_eq!(f.count, s.count, "{name}");
            assert_eq!(f.items.len(), s.items.len(), "{name}");
            for (a, b) in f.items.iter().zip(&s.items) {
                match (a, b) {
                    (FetchedItem::Alert(a), FetchedItem::Alert(b)) => {
                        assert_same_alert(a, b, &name)
                    }
                    (
                        FetchedItem::Malformed {
                            raw: r1,
                            reason: w1,
                        },
                        FetchedItem::Malformed {
                            raw: r2,
                            reason: w2,
                        },
                    ) => assert_eq!((r1, w1), (r2, w2), "{name}"),
                    _ => panic!("items disagree in {name}"),
                }
            }
        }
        (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string(), "{name}"),
        _ => panic!(
            "page paths disagree on {name}: fast {:?} slow {:?}",
            fast.as_ref().err(),
            slow.as_ref().err()
        ),
    }
    read_page(body).is_some()
}

#[test]
fn the_documented_sample_page_reads_the_same_both_ways() {
    let body = include_bytes!("data/alerts-page.json");
    assert!(check_page(body), "a clean page takes the one-pass path");
    let page: Value = serde_json::from_slice(body).unwrap();
    for a in page["value"].as_array().unwrap() {
        assert!(check_alert_text(&a.to_string()));
        assert!(check_alert_text(&serde_json::to_string_pretty(a).unwrap()));
    }
}

/// Every page the fuzz target has kept (the committed seeds, and the whole corpus where a
/// fuzzing run left it).
#[test]
fn the_fuzz_corpus_reads_the_same_both_ways() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/graph_page");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let (mut pages, mut fast_pages) = (0, 0);
    for e in entries {
        let body = std::fs::read(e.unwrap().path()).unwrap();
        pages += 1;
        fast_pages += usize::from(check_page(&body));
        // Every element on its own, too.
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            for a in v
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_alert_text(&a.to_string());
            }
        }
    }
    eprintln!("{pages} pages, {fast_pages} in one pass");
}

#[test]
fn unusual_alerts_are_left_to_the_value_path_and_read_the_same() {
    let ok = r#""id":"a","lastUpdateDateTime":"2026-01-01T00:00:00Z""#;
    for (text, one_pass) in [
        (format!("{{{ok}}}"), true),
        (format!(" {{ {ok} , \"title\" : null }} \n"), true),
        // a duplicated member that was null first: the later one wins either way
        (format!("{{{ok},\"title\":null,\"title\":\"t\"}}"), true),
        (format!("{{{ok},\"title\":\"t\",\"title\":\"u\"}}"), false),
        (format!("{{{ok},\"title\":\"t\",\"title\":7}}"), false),
        (format!("{{{ok},\"evidence\":[],\"evidence\":null}}"), false),
        (format!("{{{ok},\"id\":\"b\"}}"), false),
        (format!("{{{ok},\"title\":7}}"), false),
        (format!("{{{ok},\"evidence\":\"x\"}}"), false),
        (format!("{{{ok},\"evidence\":[1,\"x\",[],null,{{}}]}}"), true),
        (format!("{{{ok},\"evidence\":[{{\"@odata.type\":\"#a.b.c\",\"@odata.type\":5}}]}}"), true),
        (format!("{{{ok},\"evidence\":[{{\"userAccount\":{{\"upn\":\"x\"}},\"userAccount\":\"s\"}}]}}"), true),
        (format!("{{{ok},\"evidence\":[{{\"userAccount\":{{\"upn\":\"x\"}},\"userAccount\":{{\"a\":1}}}}]}}"), true),
        (format!("{{{ok},\"evidence\":[{{\"d\\u0069splayName\":\"caf\\u00e9 \\\"x\\\"\"}}]}}"), true),
        (format!("{{{ok},\"extra\":1e400}}"), false),
        (format!("{{{ok},\"extra\":\"\\ud800\"}}"), false),
        (format!("{{{ok},\"evidence\":[{{\"k\":\"\\udc00\"}}]}}"), false),
        (format!("{{{ok},\"extra\":18446744073709551616}}"), true),
        (format!("{{{ok}}} x"), false),
        (format!("[{ok}]"), false),
        (r#"{"id":" ","lastUpdateDateTime":"2026-01-01T00:00:00Z"}"#.into(), false),
        (r#"{"id":"a","lastUpdateDateTime":"yesterday"}"#.into(), false),
        (r#"{"id":"a"}"#.into(), false),
        ("not json".into(), false),
        ("5".into(), false),
    ] {
        assert_eq!(check_alert_text(&text), one_pass, "{text}");
    }
}

/// `serde_json` refuses the 128th nested container; both paths agree at and around the
/// limit, whether the alert stands alone or sits in a page (two levels down).
#[test]
fn nesting_at_the_recursion_limit_reads_the_same() {
    let ok = r#""id":"a","lastUpdateDateTime":"2026-01-01T00:00:00Z""#;
    for n in 118..=130 {
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep_obj = format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n));
        for text in [
            format!("{{{ok},\"extra\":{deep}}}"),
            format!("{{{ok},\"extra\":{deep_obj}}}"),
            format!("{{{ok},\"evidence\":[{deep}]}}"),
            format!("{{{ok},\"evidence\":[{{\"m\":{deep}}}]}}"),
            format!("{{{ok},\"evidence\":[{{\"m\":{{\"n\":{deep_obj}}}}}]}}"),
        ] {
            check_alert_text(&text);
            check_page(format!("{{\"value\":[{text}]}}").as_bytes());
            check_page(format!("{{\"value\":[],\"x\":{deep}}}").as_bytes());
        }
    }
}

#[test]
fn pages_with_unusual_envelopes_read_the_same() {
    let a = r#"{"id":"a","lastUpdateDateTime":"2026-01-01T00:00:00Z"}"#;
    for (body, one_pass) in [
        (format!(r#"{{"value":[{a},{a}]}}"#), true),
        (
            format!(r#"{{"@odata.count":2,"@odata.nextLink":"https://g/x","value":[{a}]}}"#),
            true,
        ),
        (r#"{"@odata.count":-0,"value":[]}"#.to_string(), true),
        (
            r#"{"@odata.count":-1,"@odata.nextLink":5,"value":[]}"#.to_string(),
            true,
        ),
        (
            r#"{"@odata.count":1.0,"@odata.count":3,"value":[]}"#.to_string(),
            true,
        ),
        (
            r#"{"@odata.count":3,"@odata.count":"3","value":[]}"#.to_string(),
            true,
        ),
        (format!(r#"{{"value":[{a}],"value":[]}}"#), false),
        (format!(r#"{{"value":[{a},5]}}"#), false),
        (format!(r#"{{"value":[{a},{{"id":"b"}}]}}"#), false),
        (format!(r#"{{"value":[{a}],"x":1e400}}"#), false),
        (format!(r#"{{"value":[{a}],"x":"\udfff"}}"#), false),
        (r#"{"value":{}}"#.into(), false),
        (r#"{"value":null}"#.into(), false),
        (r#"{"nope":[]}"#.into(), false),
        (r#"[]"#.into(), false),
        ("{".into(), false),
    ] {
        assert_eq!(check_page(body.as_bytes()), one_pass, "{body}");
    }
    assert!(!check_page(b"{\"value\":[],\"x\":\"\xff\"}"));
}

// ---------------------------------------------------------------------------------------------
// Generated texts
// ---------------------------------------------------------------------------------------------

/// A JSON string literal: plain, Japanese, escaped, a surrogate pair, sometimes a lone
/// surrogate (not valid for a `Value`).
fn string_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-zA-Z0-9 ]{0,8}".prop_map(|s| format!("\"{s}\"")),
        8 => prop::sample::select(&[
            "\"東京本社PC\"", "\"Servers\"", "\"  servers \"", "\"Office 365\"", "\"\"",
            "\"#microsoft.graph.security.deviceEvidence\"",
            "\"#microsoft.graph.security.cloudApplicationEvidence\"",
            "\"quote \\\" and \\\\ backslash\"", "\"caf\\u00e9\"", "\"\\ud83d\\ude00\"",
            "\"tab\\tnew\\nline\"", "\"ΣΑΣ\"",
        ][..]).prop_map(str::to_string),
        1 => prop::sample::select(&["\"\\ud800\"", "\"\\udc00x\""][..]).prop_map(str::to_string),
    ]
}

fn number_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => any::<i32>().prop_map(|n| n.to_string()),
        8 => prop::sample::select(&["-0", "1.5", "1E2", "18446744073709551616", "-9223372036854775809", "0.1e-5"][..]).prop_map(str::to_string),
        1 => prop::sample::select(&["1e400", "-1e999"][..]).prop_map(str::to_string),
    ]
}

fn key_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&KEYS[..]).prop_map(|k| format!("\"{k}\"")),
        1 => "[a-z]{1,4}".prop_map(|k| format!("\"{k}\"")),
        1 => Just("\"d\\u0069splayName\"".to_string()),
    ]
}

/// Any JSON value as text, with objects that may repeat a member.
fn value_lit() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        string_lit(),
        number_lit(),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key_lit(), inner), 0..5).prop_map(|m| {
                let m: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", m.join(" , "))
            }),
        ]
    })
}

/// An evidence entry: mostly an object with the members decisions read (sometimes twice, of
/// other types, or nested), sometimes anything.
fn entry_lit() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        3 => (Just("\"@odata.type\"".to_string()), string_lit()),
        3 => (prop::sample::select(&["\"rbacGroupName\"", "\"displayName\"", "\"url\""][..]).prop_map(str::to_string), string_lit()),
        2 => (prop::sample::select(&["\"userAccount\"", "\"fileDetails\""][..]).prop_map(str::to_string),
              prop::collection::vec((key_lit(), prop_oneof![string_lit(), value_lit()]), 0..4).prop_map(|m| {
                  let m: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                  format!("{{{}}}", m.join(","))
              })),
        2 => (key_lit(), value_lit()),
    ];
    prop_oneof![
        6 => prop::collection::vec(member, 0..6).prop_map(|m| {
            let m: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", m.join(","))
        }),
        1 => value_lit(),
    ]
}

const STRING_FIELDS: [&str; 10] = [
    "title",
    "severity",
    "serviceSource",
    "tenantId",
    "incidentId",
    "alertPolicyId",
    "detectorId",
    "status",
    "description",
    "createdDateTime",
];

/// An alert object as text: usually a valid id and time, the fields decisions read (usually
/// strings, sometimes null or of a wrong type, sometimes repeated), evidence, unknown members.
fn alert_lit() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        16 => Just("\"id\":\"da638000_1\"".to_string()),
        1 => Just("\"id\":\"  \"".to_string()),
        1 => value_lit().prop_map(|v| format!("\"id\":{v}")),
    ];
    let time = prop_oneof![
        16 => Just("\"lastUpdateDateTime\":\"2026-11-02T03:04:05.1234567Z\"".to_string()),
        1 => Just("\"lastUpdateDateTime\":\"yesterday\"".to_string()),
        1 => value_lit().prop_map(|v| format!("\"lastUpdateDateTime\":{v}")),
    ];
    let field = prop_oneof![
        6 => (prop::sample::select(&STRING_FIELDS[..]),
              prop_oneof![12 => string_lit(), 2 => Just("null".to_string()), 1 => value_lit()])
            .prop_map(|(k, v)| format!("\"{k}\":{v}")),
        1 => prop::collection::vec(prop_oneof![string_lit(), Just("null".to_string()), number_lit()], 0..3)
            .prop_map(|v| format!("\"mitreTechniques\":[{}]", v.join(","))),
        2 => prop::collection::vec(entry_lit(), 0..4)
            .prop_map(|v| format!("\"evidence\":[{}]", v.join(","))),
        1 => (key_lit(), value_lit()).prop_map(|(k, v)| format!("{k}:{v}")),
    ];
    (
        id,
        time,
        prop::collection::vec(field, 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, time, mut members, at)| {
            members.insert(0, time);
            members.insert(at.index(members.len() + 1), id);
            format!("{{{}}}", members.join(","))
        })
}

/// The generators reach the one-pass path often (else the properties below would mostly
/// test the `Value` path against itself).
#[test]
fn generated_texts_mostly_take_the_one_pass_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut alerts, mut fast) = (0, 0);
    for _ in 0..500 {
        let text = alert_lit().new_tree(&mut runner).unwrap().current();
        alerts += 1;
        fast += usize::from(check_alert_text(&text));
    }
    assert!(fast * 3 > alerts, "{fast} of {alerts} in one pass");
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(n),
    )
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn generated_alerts_read_the_same_both_ways(text in alert_lit()) {
        check_alert_text(&text);
    }

    #[test]
    fn generated_pages_read_the_same_both_ways(
        alerts in prop::collection::vec(alert_lit(), 0..4),
        count in prop::option::of(prop_oneof![number_lit(), string_lit()]),
        next in prop::option::of(prop_oneof![string_lit(), number_lit()]),
        extra in prop::option::of(value_lit()),
    ) {
        let mut members = vec![format!("\"value\":[{}]", alerts.join(","))];
        if let Some(c) = count { members.push(format!("\"@odata.count\":{c}")); }
        if let Some(n) = next { members.push(format!("\"@odata.nextLink\":{n}")); }
        if let Some(x) = extra { members.insert(0, format!("\"@odata.context\":{x}")); }
        check_page(format!("{{{}}}", members.join(",")).as_bytes());
    }

    /// The allocation-free comparisons in `classify` are `to_lowercase` comparisons.
    #[test]
    fn lowercase_comparisons_are_to_lowercase(
        a in "(?s)[a-zA-Z0-9 ΣσςİıẞßK東ǅǄ\u{0307}]{0,6}",
        b in "(?s)[a-zA-Z0-9 ΣσςİıẞßK東ǅǄ\u{0307}]{0,6}",
    ) {
        for (x, y) in [(&a, &b), (&a, &a.to_uppercase()), (&a, &a.to_lowercase()), (&b, &a.to_uppercase())] {
            prop_assert_eq!(same_lowercase(x, y), x.to_lowercase() == y.to_lowercase(), "{:?} {:?}", x, y);
            let lowered = y.to_lowercase();
            prop_assert_eq!(lowercases_to(x, &lowered), x.to_lowercase() == lowered, "{:?} {:?}", x, lowered);
            prop_assert_eq!(lowercases_to(x, y), x.to_lowercase() == *y, "{:?} {:?}", x, y);
        }
    }
}
