use super::*;
use proptest::prelude::*;

const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

fn err(header: &str) -> XfccError {
    parse(header).unwrap_err()
}

#[test]
fn parses_envoy_example() {
    let header = format!(
        "By=spiffe://example.org/ns/gw/sa/gw;Hash={HASH};\
             Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";\
             URI=spiffe://example.org/ns/default/sa/agent"
    );
    let elements = parse(&header).unwrap();
    assert_eq!(
        elements,
        vec![XfccElement {
            by: vec!["spiffe://example.org/ns/gw/sa/gw".into()],
            hash: Some(HASH.into()),
            subject: Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client".into()),
            uri: vec!["spiffe://example.org/ns/default/sa/agent".into()],
            ..XfccElement::default()
        }]
    );
}

#[test]
fn parses_envoy_docs_examples() {
    // The examples from Envoy's header documentation, verbatim.
    let one = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com",
        )
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].uri, ["http://testclient.lyft.com"]);

    let two = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com",
        )
        .unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].by, ["http://frontend.lyft.com"]);
    assert_eq!(two[1].by, ["http://backend.lyft.com"]);
    assert_eq!(two[1].uri, ["http://frontend.lyft.com"]);

    let dns = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com",
        )
        .unwrap();
    assert_eq!(dns[0].dns, ["lyft.com", "www.lyft.com"]);
}

#[test]
fn parses_cert_and_chain() {
    let elements = parse("Cert=\"-----BEGIN%20CERTIFICATE-----%0A\";Chain=abc%2F").unwrap();
    assert_eq!(
        elements[0].cert.as_deref(),
        Some("-----BEGIN%20CERTIFICATE-----%0A")
    );
    assert_eq!(elements[0].chain.as_deref(), Some("abc%2F"));
}

#[test]
fn quoted_values_keep_separators_and_unescape() {
    let elements = parse(r#"Subject="CN=a,b;c=d \"q\" \\ end";URI="x""#).unwrap();
    assert_eq!(
        elements[0].subject.as_deref(),
        Some(r#"CN=a,b;c=d "q" \ end"#)
    );
    assert_eq!(elements[0].uri, ["x"]);
    assert_eq!(
        parse(r#"Subject="""#).unwrap()[0].subject.as_deref(),
        Some("")
    );
}

#[test]
fn keys_are_case_insensitive_and_unknown_keys_ignored() {
    let elements = parse("bY=a;uri=b;Dns=c;HASH=d;sUbJeCt=e;Future-Key=\"x;y\";x_2=").unwrap();
    assert_eq!(
        elements[0],
        XfccElement {
            by: vec!["a".into()],
            hash: Some("d".into()),
            subject: Some("e".into()),
            uri: vec!["b".into()],
            dns: vec!["c".into()],
            ..XfccElement::default()
        }
    );
    // Unknown keys may repeat.
    assert!(parse("X=1;X=2").is_ok());
}

#[test]
fn empty_list_values_are_no_values() {
    let elements = parse("By=a;Hash=h;Subject=\"\";URI=;DNS=\"\"").unwrap();
    assert!(elements[0].uri.is_empty());
    assert!(elements[0].dns.is_empty());
}

#[test]
fn tolerates_spaces_after_separators() {
    let elements = parse("By=a; URI=b,  By=c;  URI=d").unwrap();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[1].by, ["c"]);
    assert_eq!(elements[1].uri, ["d"]);
}

#[test]
fn picks_first_or_last() {
    let elements = parse("URI=client,URI=middle,URI=nearest").unwrap();
    assert_eq!(
        XfccElementChoice::First.pick(&elements).unwrap().uri,
        ["client"]
    );
    assert_eq!(
        XfccElementChoice::Last.pick(&elements).unwrap().uri,
        ["nearest"]
    );
    assert_eq!(XfccElementChoice::default(), XfccElementChoice::Last);
    assert_eq!(XfccElementChoice::First.pick(&[]), None);
}

#[test]
fn choice_deserializes_snake_case() {
    let first: XfccElementChoice = serde_json::from_str("\"first\"").unwrap();
    assert_eq!(first, XfccElementChoice::First);
    let last: XfccElementChoice = serde_json::from_str("\"last\"").unwrap();
    assert_eq!(last, XfccElementChoice::Last);
    assert!(serde_json::from_str::<XfccElementChoice>("\"First\"").is_err());
}

#[test]
fn rejects_empty() {
    assert_eq!(err(""), XfccError::Empty);
    assert_eq!(err("   "), XfccError::Empty);
}

#[test]
fn rejects_too_long() {
    let header = format!("By={}", "a".repeat(MAX_HEADER_BYTES));
    assert_eq!(err(&header), XfccError::TooLong { len: header.len() });
    assert!(parse(&format!("By={}", "a".repeat(MAX_HEADER_BYTES - 3))).is_ok());
}

#[test]
fn rejects_too_many_elements() {
    let ok = vec!["URI=a"; MAX_ELEMENTS].join(",");
    assert_eq!(parse(&ok).unwrap().len(), MAX_ELEMENTS);
    let too_many = vec!["URI=a"; MAX_ELEMENTS + 1].join(",");
    assert_eq!(err(&too_many), XfccError::TooManyElements);
}

#[test]
fn rejects_control_characters() {
    assert_eq!(err("By=a\nb"), XfccError::ControlCharacter { offset: 4 });
    assert_eq!(
        err("By=\"a\tb\""),
        XfccError::ControlCharacter { offset: 5 }
    );
    assert_eq!(err("By=a\u{7f}"), XfccError::ControlCharacter { offset: 4 });
    assert_eq!(err("By=\0"), XfccError::ControlCharacter { offset: 3 });
}

#[test]
fn rejects_empty_element() {
    assert_eq!(err("By=a,"), XfccError::EmptyElement { offset: 5 });
    assert_eq!(err("By=a,,By=b"), XfccError::EmptyElement { offset: 5 });
    assert_eq!(err(",By=a"), XfccError::EmptyElement { offset: 0 });
    assert_eq!(err("By=a, ;By=b"), XfccError::EmptyElement { offset: 5 });
}

#[test]
fn rejects_empty_pair() {
    assert_eq!(err("By=a;"), XfccError::EmptyPair { offset: 5 });
    assert_eq!(err("By=a;;URI=b"), XfccError::EmptyPair { offset: 5 });
    assert_eq!(err("By=a; ,URI=b"), XfccError::EmptyPair { offset: 6 });
}

#[test]
fn rejects_missing_equals() {
    assert_eq!(err("By"), XfccError::MissingEquals { offset: 0 });
    assert_eq!(err("By=a;URI"), XfccError::MissingEquals { offset: 5 });
    assert_eq!(err("By=a;URI,By=b"), XfccError::MissingEquals { offset: 5 });
}

#[test]
fn rejects_empty_key() {
    assert_eq!(err("=a"), XfccError::EmptyKey { offset: 0 });
    assert_eq!(err("By=a; =b"), XfccError::EmptyKey { offset: 6 });
}

#[test]
fn rejects_invalid_key() {
    assert_eq!(err("B y=a"), XfccError::InvalidKey { offset: 0 });
    assert_eq!(err("By =a"), XfccError::InvalidKey { offset: 0 });
    assert_eq!(err("\"By\"=a"), XfccError::InvalidKey { offset: 0 });
    assert_eq!(err("Bÿ=a"), XfccError::InvalidKey { offset: 0 });
}

#[test]
fn rejects_unterminated_quote() {
    assert_eq!(err("By=\"abc"), XfccError::UnterminatedQuote { offset: 3 });
    assert_eq!(
        err("By=\"abc,URI=x"),
        XfccError::UnterminatedQuote { offset: 3 }
    );
    assert_eq!(
        err("By=\"abc\\"),
        XfccError::UnterminatedQuote { offset: 3 }
    );
    assert_eq!(
        err("By=\"abc\\\""),
        XfccError::UnterminatedQuote { offset: 3 }
    );
}

#[test]
fn rejects_bad_escape() {
    assert_eq!(
        err(r#"Subject="CN=a\,b""#),
        XfccError::BadEscape { offset: 13 }
    );
    assert_eq!(err(r#"By="\n""#), XfccError::BadEscape { offset: 4 });
    assert_eq!(err("By=\"\\é\""), XfccError::BadEscape { offset: 4 });
}

#[test]
fn rejects_characters_after_closing_quote() {
    assert_eq!(
        err(r#"By="a"b"#),
        XfccError::TrailingAfterQuote { offset: 6 }
    );
    assert_eq!(
        err(r#"By="a" ;URI=b"#),
        XfccError::TrailingAfterQuote { offset: 6 }
    );
    assert_eq!(
        err(r#"By="a""b""#),
        XfccError::TrailingAfterQuote { offset: 6 }
    );
}

#[test]
fn rejects_quote_inside_unquoted_value() {
    assert_eq!(err(r#"By=a"b""#), XfccError::UnexpectedQuote { offset: 4 });
}

#[test]
fn rejects_duplicate_single_valued_keys() {
    assert_eq!(
        err("Hash=a;hash=b"),
        XfccError::DuplicateKey {
            key: "Hash",
            offset: 7
        }
    );
    for key in ["Subject", "Cert", "Chain"] {
        let e = err(&format!("{key}=a;URI=u;{}=b", key.to_uppercase()));
        assert_eq!(
            e,
            XfccError::DuplicateKey {
                key,
                offset: key.len() + "=a;URI=u;".len()
            }
        );
    }
    // The same key in different elements is fine.
    assert_eq!(parse("Hash=a,Hash=b").unwrap().len(), 2);
}

#[test]
fn reasons_are_stable() {
    assert_eq!(err("").reason(), "empty");
    assert_eq!(err("By=\"a").reason(), "unterminated_quote");
    assert_eq!(err("Hash=a;Hash=b").reason(), "duplicate_key");
    assert_eq!(
        err("Hash=a;Hash=b").to_string(),
        "XFCC element has more than one `Hash` at byte 7"
    );
}

/// Renders elements the way Envoy would, quoting when needed (or always).
fn render(elements: &[XfccElement], quote_all: bool) -> String {
    let value = |v: &str| {
        if quote_all || v.is_empty() || v.contains([',', ';', '"', ' ']) {
            format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            v.to_owned()
        }
    };
    let render_one = |e: &XfccElement| {
        let mut pairs = Vec::new();
        pairs.extend(e.by.iter().map(|v| format!("By={}", value(v))));
        pairs.extend(e.hash.iter().map(|v| format!("Hash={}", value(v))));
        pairs.extend(e.cert.iter().map(|v| format!("cert={}", value(v))));
        pairs.extend(e.chain.iter().map(|v| format!("CHAIN={}", value(v))));
        pairs.extend(e.subject.iter().map(|v| format!("Subject={}", value(v))));
        pairs.extend(e.uri.iter().map(|v| format!("URI={}", value(v))));
        pairs.extend(e.dns.iter().map(|v| format!("DNS={}", value(v))));
        pairs.join(";")
    };
    elements
        .iter()
        .map(render_one)
        .collect::<Vec<_>>()
        .join(",")
}

fn element() -> impl Strategy<Value = XfccElement> {
    let text = || "[^\\p{Cc}]{0,12}";
    let list = move || proptest::collection::vec("[^\\p{Cc}]{1,12}", 0..3);
    (
        list(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        list(),
        list(),
    )
        .prop_map(|(by, hash, cert, chain, subject, uri, dns)| XfccElement {
            by,
            hash,
            cert,
            chain,
            subject,
            uri,
            dns,
        })
        .prop_filter("an element needs a pair", |e| *e != XfccElement::default())
}

proptest! {
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_xfcc_like_input(s in "[A-Za-z=;,\"\\\\ é]{0,64}") {
        let _ = parse(&s);
    }

    #[test]
    fn rendered_elements_round_trip(
        elements in proptest::collection::vec(element(), 1..6),
        quote_all in any::<bool>(),
    ) {
        let header = render(&elements, quote_all);
        prop_assert_eq!(parse(&header).unwrap(), elements);
    }
}
