//! `Json` against the reader it replaced: the strict `serde_json::Value`
//! visitor that `classify::body` used until issue 17, kept here verbatim as the
//! oracle. Every body must be accepted or refused alike (with the same
//! message), and an accepted one must be the same value with its keys in the
//! same order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;

use proptest::prelude::*;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::*;

/// The pre-issue-17 strict parser (`classify::body::parse_json`).
fn reference(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    StrictValue
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format_args!("duplicate key `{shown}`")));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The keys of every object, depth first, in the order a reader iterates
/// them (`Value` equality ignores the order of an object's keys).
fn key_order(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|x| key_order(x, out)),
        Value::Object(map) => {
            for (k, x) in map {
                out.push(k.clone());
                key_order(x, out);
            }
            out.push("}".to_owned());
        }
        _ => {}
    }
}

/// `body` reads the same through `Json` as through the reference.
fn assert_same(body: &[u8]) {
    let new = Json::parse(body);
    let old = reference(body);
    match (&new, &old) {
        (Ok(new), Ok(old)) => {
            let new = new.to_value();
            assert_eq!(&new, old, "{}", String::from_utf8_lossy(body));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            key_order(&new, &mut a);
            key_order(old, &mut b);
            assert_eq!(a, b, "key order of {}", String::from_utf8_lossy(body));
        }
        (Err(new), Err(old)) => assert_eq!(
            new.to_string(),
            old.to_string(),
            "{}",
            String::from_utf8_lossy(body)
        ),
        _ => panic!(
            "{}: new {:?}, old {:?}",
            String::from_utf8_lossy(body),
            new.map(|j| j.to_value()),
            old
        ),
    }
}

/// An object of `n` distinct keys `k0..`, then `extra` (already with its comma).
fn wide_object(n: usize, extra: &str) -> String {
    let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
    format!("{{{}{extra}}}", keys.join(","))
}

/// Hand-written bodies at the edges of JSON: duplicates, numbers, strings,
/// structure.
fn written_bodies() -> Vec<Vec<u8>> {
    [
        // Duplicates, plain and escaped, at any depth, and near-duplicates.
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","mod\u0065l":"b"}"#,
        r#"{"\u006dodel":"a","model":"a"}"#,
        r#"{"model":"a","Model":"b","MODEL":"c"}"#,
        r#"{"x":[{"a":1,"a":2}]}"#,
        r#"{"a":1,"b":{"a":2}}"#,
        r#"{"a":{"b":{"c":{"d":1,"d":1}}}}"#,
        r#"{"":1,"":2}"#,
        r#"{"":1,"\u0000":2}"#,
        r#"{"a\"b":1,"a\u0022b":2}"#,
        r#"{"é":1,"\u00e9":2}"#,
        r#"{"e\u0301":1,"é":2}"#,
        // Numbers at the edges of i64 / u64 / f64.
        r#"{"n":-0,"m":0.0,"o":-0.0,"p":1E2,"q":1e-400,"r":5e-324}"#,
        r#"[9223372036854775807,9223372036854775808,-9223372036854775808,-9223372036854775809]"#,
        r#"[18446744073709551615,18446744073709551616,123456789012345678901234567890]"#,
        r#"[1.7976931348623157e308,1e309,-1e999]"#,
        r#"[0.1,0.7,1.5,2.5,1e300,01]"#,
        r#"[1.,.5,+1,-,1e,1e+,NaN,Infinity]"#,
        // Strings: escapes, surrogates, control characters.
        r#"["\ud83d\ude00","\u00e9","\/","\b\f\n\r\t"]"#,
        r#"["\ud800"]"#,
        r#"["\udc00\ud800"]"#,
        r#"["\x"]"#,
        "[\"tab\there\"]",
        "[\"nul\u{0}\"]",
        // Structure.
        "",
        " ",
        "null",
        "true",
        "\"s\"",
        "[]",
        "{}",
        "[[],{},[{}]]",
        "{} {}",
        "{}x",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1",
        "[",
        "\u{feff}{}",
        " \n\t\r{ \"a\" : [ 1 , 2 ] } \n",
        "{\"a\":1}\u{0}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[test]
fn tricky_bodies_read_as_the_reference_reads_them() {
    let mut bodies = written_bodies();
    // Invalid UTF-8 in a string, in a key, and outside any string.
    bodies.push(b"[\"\xff\"]".to_vec());
    bodies.push(b"{\"\xc3\":1}".to_vec());
    bodies.push(b"{\"a\":\"\xed\xa0\x80\"}".to_vec());
    bodies.push(b"\xff{}".to_vec());
    bodies.push(b"\xef\xbb\xbf{\"model\":\"a\"}".to_vec());
    // UTF-16 is not read here (only `sniff` reads wide bodies).
    bodies.push(b"{\0\"\0a\0\"\0:\x001\0}\0".to_vec());
    // Deep nesting: 127 levels parse, deeper is an error.
    for depth in [127, 128, 129, 5_000] {
        bodies.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
        bodies.push(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes());
    }
    // Wide objects: the duplicate check switches from a scan to a set.
    for n in [
        SCAN_KEYS - 1,
        SCAN_KEYS,
        SCAN_KEYS + 1,
        2 * SCAN_KEYS,
        1_000,
    ] {
        bodies.push(wide_object(n, "").into_bytes());
        bodies.push(wide_object(n, ",\"k0\":0").into_bytes());
        bodies.push(wide_object(n, &format!(",\"k{}\":0", n - 1)).into_bytes());
        bodies.push(wide_object(n, ",\"\\u006b0\":0").into_bytes());
        bodies.push(wide_object(n, ",\"model\":\"a\",\"x\":1,\"model\":\"b\"").into_bytes());
        bodies.push(wide_object(n, ",\"model\":\"a\",\"x\":1,\"mod\\u0065l\":\"b\"").into_bytes());
    }
    // A realistic chat body.
    bodies.push(
        serde_json::to_vec(&serde_json::json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be \"brief\".\n"},
                {"role": "user", "content": [{"type": "text", "text": "héllo"},
                    {"type": "image_url", "image_url": {"url": "data:xxxx"}}]},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "max_tokens": 512, "temperature": 0.2, "stream": false,
        }))
        .unwrap(),
    );
    for body in &bodies {
        assert_same(body);
    }
}

#[test]
fn strings_without_escapes_borrow_the_body() {
    let body = br#"{"model":"gpt-4o","note":"a\nb","k\u0065y":1}"#;
    let Json::Object(entries) = Json::parse(body).unwrap() else {
        panic!("an object");
    };
    let borrowed: Vec<(bool, bool)> = entries
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => matches!(s, Cow::Borrowed(_)),
                _ => true,
            };
            (matches!(k, Cow::Borrowed(_)), v)
        })
        .collect();
    assert_eq!(borrowed, [(true, true), (true, false), (false, true)]);
}

/// JSON text with duplicate keys and escaped key spellings mixed in, so both
/// outcomes of the duplicate check are common.
fn json_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("model".to_owned()),
        Just("mod\\u0065l".to_owned()),
        Just("Model".to_owned()),
        Just("messages".to_owned()),
        Just("".to_owned()),
        "[a-c]{1,2}",
    ];
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "[0-9]{1,30}",
        ".{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud800""#.to_owned()),
        Just(r#""\u00e9\n""#.to_owned()),
    ];
    nested(leaf.boxed(), key.boxed(), (4, 64), (6, 24))
}

/// JSON texts of `leaf` values nested in arrays (up to `items` long) and
/// objects (up to `entries` entries keyed by `key`), `depth` deep and about
/// `size` nodes in all.
fn nested(
    leaf: BoxedStrategy<String>,
    key: BoxedStrategy<String>,
    (depth, size): (u32, u32),
    (items, entries): (usize, usize),
) -> impl Strategy<Value = String> {
    leaf.prop_recursive(depth, size, entries as u32, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..items)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key.clone(), inner), 0..entries).prop_map(|entries| {
                let entries: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn generated_json_reads_as_the_reference_reads_it(text in json_text()) {
        assert_same(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_read_as_the_reference_reads_them(
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        assert_same(&body);
    }

    #[test]
    fn mangled_json_reads_as_the_reference_reads_it(
        text in json_text(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        // One byte replaced: mostly invalid JSON or invalid UTF-8, sometimes a
        // new duplicate or a different number.
        let mut body = text.into_bytes();
        if !body.is_empty() {
            let i = at.index(body.len());
            body[i] = byte;
        }
        assert_same(&body);
    }
}

/// The reader `Json::parse` used for every body before it read UTF-8 bodies
/// as text: serde_json's byte reader, which checks each string's UTF-8.
fn by_bytes(bytes: &[u8]) -> Result<Json<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// `body` reads through `Json::parse` exactly as through the byte reader:
/// the same value, the same borrowing, or the same message.
fn assert_as_by_bytes(body: &[u8]) {
    let borrowed = |j: &Json<'_>| {
        fn walk(j: &Json<'_>, out: &mut Vec<bool>) {
            match j {
                Json::String(s) => out.push(matches!(s, Cow::Borrowed(_))),
                Json::Array(items) => items.iter().for_each(|x| walk(x, out)),
                Json::Object(entries) => entries.iter().for_each(|(k, v)| {
                    out.push(matches!(k, Cow::Borrowed(_)));
                    walk(v, out);
                }),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(j, &mut out);
        out
    };
    let shown = String::from_utf8_lossy(body);
    match (Json::parse(body), by_bytes(body)) {
        (Ok(new), Ok(old)) => {
            assert_eq!(new, old, "{shown}");
            assert_eq!(borrowed(&new), borrowed(&old), "{shown}");
        }
        (Err(new), Err(old)) => assert_eq!(new.to_string(), old.to_string(), "{shown}"),
        (new, old) => panic!("{shown}: new {new:?}, old {old:?}"),
    }
}

#[test]
fn tricky_bodies_read_as_the_byte_reader_reads_them() {
    let mut bodies = written_bodies();
    bodies.extend([
        b"[\"\xff\"]".to_vec(),
        b"{\"\xc3\":1}".to_vec(),
        b"{\"a\":\"\xed\xa0\x80\"}".to_vec(),
        b"{\"a\":\"\xf4\x90\x80\x80\"}".to_vec(),
        b"{\"a\":\"\xc0\xaf\"}".to_vec(),
        b"\xff{}".to_vec(),
        b"{}\xff".to_vec(),
        b"{} \xc3".to_vec(),
        b"{\"a\":1,\"a\":\"\xff\"}".to_vec(),
        b"{\"a\":\"\xff\",\"a\":1}".to_vec(),
        b"{\"a\\u0000\":\"\xe2\x82\"}".to_vec(),
        b"\xef\xbb\xbf{\"model\":\"a\"}".to_vec(),
        b"{\0\"\0a\0\"\0:\x001\0}\0".to_vec(),
        "{\"é\":\"\u{1F600}\\ud83d\\ude00\",\"\\u00e9\":1}"
            .as_bytes()
            .to_vec(),
        "[\"\\ud83d\u{e9}\"]".as_bytes().to_vec(),
        "[\"\\ud83d\\u00e9\"]".as_bytes().to_vec(),
    ]);
    // Huge strings, with and without escapes and multibyte characters.
    for unit in ["a", "é", "\\n", "\u{1F600}", "\\u00e9"] {
        bodies.push(format!("{{\"model\":\"{}\"}}", unit.repeat(70_000)).into_bytes());
    }
    for body in &bodies {
        assert_as_by_bytes(body);
        // Every prefix: a body cut anywhere, also inside a character.
        for cut in (0..body.len()).filter(|&i| i < 300) {
            assert_as_by_bytes(&body[..cut]);
        }
    }
}

/// A JSON text with multibyte characters in keys and strings, raw and escaped.
fn unicode_json_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("model".to_owned()),
        Just("m\\u00e9".to_owned()),
        Just("mé".to_owned()),
        Just("\\ud83d\\ude00".to_owned()),
        Just("\u{1F600}".to_owned()),
        "\\PC{0,3}".prop_map(|s| serde_json::to_string(&s)
            .unwrap()
            .trim_matches('"')
            .to_owned()),
    ];
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[\\u{80}-\\u{10FFFF}]{0,6}".prop_map(|s| format!("\"{s}\"")),
        Just("\"\\ud83d\\ude00\\u00e9é\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    nested(leaf.boxed(), key.boxed(), (3, 32), (5, 8))
}

proptest! {
    #[test]
    fn generated_json_reads_as_the_byte_reader_reads_it(
        text in prop_oneof![json_text(), unicode_json_text()],
        ws in prop::sample::select(vec!["", " ", "\n\t", "\u{feff}", "\u{a0}"]),
    ) {
        assert_as_by_bytes(text.as_bytes());
        assert_as_by_bytes(format!("{ws}{text}{ws}").as_bytes());
    }

    #[test]
    fn arbitrary_bytes_read_as_the_byte_reader_reads_them(
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        assert_as_by_bytes(&body);
    }

    #[test]
    fn mangled_json_reads_as_the_byte_reader_reads_it(
        text in prop_oneof![json_text(), unicode_json_text()],
        at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 1..4),
    ) {
        // Bytes replaced (invalid UTF-8, a split character, a new duplicate,
        // a quote or backslash), then the body cut short.
        let mut body = text.into_bytes();
        if !body.is_empty() {
            let i = at.index(body.len());
            let end = (i + bytes.len()).min(body.len());
            body.splice(i..end, bytes);
            body.truncate(cut.index(body.len() + 1));
        }
        assert_as_by_bytes(&body);
        assert_same(&body);
    }
}

#[test]
fn lookup_refuses_keys_go_folds_to_the_key() {
    assert!(folds_to("Model", "model"));
    assert!(folds_to("MAX_TOKENS", "max_tokens"));
    assert!(folds_to("max_to\u{212A}ens", "max_tokens"));
    assert!(folds_to("\u{17F}tream", "stream"));
    assert!(folds_to("\u{17F}TREAM", "stream"));
    assert!(folds_to("model", "model"));
    assert!(!folds_to("mode", "model"));
    assert!(!folds_to("models", "model"));
    assert!(!folds_to("m\u{f6}del", "model"));
    assert!(folds_to("\u{130}d", "id"));
    assert!(folds_to("\u{131}D", "id"));
    assert!(!folds_to("\u{130}d", "od"));
    assert!(!folds_to("\u{212A}", "s"));
    let body = br#"{"model":"a","Model":"b","stream":true}"#;
    let json = Json::parse(body).unwrap();
    assert_eq!(json.lookup("model"), Err("Model"));
    assert_eq!(json.lookup("stream"), Ok(Some(&Json::Bool(true))));
    assert_eq!(json.lookup("n"), Ok(None));
    assert_eq!(Json::Null.lookup("model"), Ok(None));
}

#[test]
fn folded_is_what_folds_to_compares() {
    for (k, want) in [
        ("path", "path"),
        ("Path", "path"),
        ("PATH", "path"),
        ("pat\u{212A}", "patk"),
        ("\u{17F}ize", "size"),
        ("F\u{130}LE", "file"),
        ("f\u{131}le", "file"),
        ("p\u{e4}th", "p\u{e4}th"),
    ] {
        assert_eq!(folded(k), want, "{k:?}");
    }
    assert!(matches!(folded("path"), std::borrow::Cow::Borrowed(_)));
}

proptest! {
    /// For an ASCII key, `folds_to` holds exactly when `folded` is the key
    /// in lower case.
    #[test]
    fn folds_to_is_folded_equality(
        k in "[a-zA-Z_\u{212A}\u{17F}\u{130}\u{131}\u{e4}]{0,6}",
        key in "[a-zA-Z_]{0,6}",
    ) {
        prop_assert_eq!(folds_to(&k, &key), folded(&k) == key.to_ascii_lowercase());
        prop_assert!(folds_to(&k, &folded(&k)) || !folded(&k).is_ascii());
    }
}
