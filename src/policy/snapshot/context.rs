//! A request's Cedar context, built straight from its values.
//!
//! Cedar's public way in, `Context::from_pairs`, takes restricted
//! expressions: each [`Value`] is first copied into an expression tree
//! ([`Value::to_expr`]), then Cedar interprets that tree back into values,
//! calling the `ip` and `datetime` constructors on the way. A miss paid that
//! round trip on every context (about 40k instructions for a workload's, 70k
//! for a model request's `ai` record). Yet what the interpreter makes of a
//! context is fixed by its values alone: a literal becomes that literal, a set
//! `Value::set` of its elements, a record `Value::record` of its attributes,
//! an extension call what the extension function returns for its argument.
//! [`direct`] makes exactly that with the same constructors and the same
//! extension functions, through `cedar-policy-core`, the engine cedar-policy
//! wraps (pinned to the same version).
//!
//! Where the two could part, [`direct`] gives up and the caller takes
//! `from_pairs`: a record with a key twice (the interpreter refuses it, a map
//! would keep one), an extension argument its constructor refuses (Cedar's
//! own error is the message). A property test holds [`direct`] equal to
//! `from_pairs` over arbitrary contexts, and checks that it gives up on
//! nothing else.

use std::sync::LazyLock;

use cedar_policy::Context;
use cedar_policy_core::ast::{self, ExtensionFunction, Name, PartialValue, ValueKind};
use cedar_policy_core::extensions::Extensions;

use crate::vocab::Value;

/// The context `from_pairs` would build from `values`, without its round trip
/// through expressions; `None` where it could differ (see the module docs).
pub(super) fn direct(values: &[(String, Value)]) -> Option<Context> {
    match record(values)?.value {
        ValueKind::Record(attrs) => Some(Context::from(ast::Context::Value(attrs))),
        _ => None,
    }
}

/// `Value::record` of the attributes, unless a key comes twice.
fn record(fields: &[(String, Value)]) -> Option<ast::Value> {
    let built = ast::Value::record(
        fields
            .iter()
            .map(|(k, v)| Ok((k.as_str(), value(v)?)))
            .collect::<Result<Vec<_>, ()>>()
            .ok()?,
        None,
    );
    match &built.value {
        ValueKind::Record(attrs) if attrs.len() == fields.len() => Some(built),
        _ => None,
    }
}

/// What Cedar's interpreter makes of `v`'s expression; `Err` where the
/// interpreter could make something else of it (see the module docs).
pub(super) fn value(v: &Value) -> Result<ast::Value, ()> {
    Ok(match v {
        Value::Str(s) => ast::Value::from(s.as_str()),
        Value::Long(n) => ast::Value::from(*n),
        Value::Bool(b) => ast::Value::from(*b),
        Value::Ip(text) => IP.with(|last| last.value(text))?,
        Value::Datetime(text) => DATETIME.with(|last| last.value(text))?,
        Value::Entity(uid) => ast::Value::from(AsRef::<ast::EntityUID>::as_ref(uid).clone()),
        Value::Set(items) => ast::Value::set(
            items.iter().map(value).collect::<Result<Vec<_>, ()>>()?,
            None,
        ),
        Value::Record(fields) => record(fields).ok_or(())?,
    })
}

/// One extension constructor and the last value it made on this thread:
/// consecutive requests mostly share the time (second resolution) and often
/// the peer address.
struct LastExtension {
    function: &'static LazyLock<Option<&'static ExtensionFunction>>,
    last: std::cell::RefCell<Option<(String, ast::Value)>>,
}

thread_local! {
    static IP: LastExtension = const { LastExtension::new(&IP_FN) };
    static DATETIME: LastExtension = const { LastExtension::new(&DATETIME_FN) };
}

static IP_FN: LazyLock<Option<&'static ExtensionFunction>> = LazyLock::new(|| function("ip"));
static DATETIME_FN: LazyLock<Option<&'static ExtensionFunction>> =
    LazyLock::new(|| function("datetime"));

/// The extension function `name` (what `RestrictedExpression::new_ip` /
/// `new_datetime` call), from every extension cedar-policy enables.
fn function(name: &str) -> Option<&'static ExtensionFunction> {
    let name: Name = name.parse().ok()?;
    Extensions::all_available().func(&name).ok()
}

// === impl LastExtension ===

impl LastExtension {
    const fn new(function: &'static LazyLock<Option<&'static ExtensionFunction>>) -> Self {
        Self {
            function,
            last: std::cell::RefCell::new(None),
        }
    }

    /// The constructor's value for `text`; `Err` when it refuses `text` (or
    /// the extension is missing).
    fn value(&self, text: &str) -> Result<ast::Value, ()> {
        let mut last = self.last.borrow_mut();
        if let Some((t, v)) = last.as_ref()
            && t == text
        {
            return Ok(v.clone());
        }
        let function = (**self.function).ok_or(())?;
        let v = match function.call(&[ast::Value::from(text)]) {
            Ok(PartialValue::Value(v)) => v,
            _ => return Err(()),
        };
        *last = Some((text.to_owned(), v.clone()));
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use cedar_policy::{EntityUid, RestrictedExpression};
    use proptest::prelude::*;

    /// The context `from_pairs` builds: the path a miss took before.
    fn by_expr(values: &[(String, Value)]) -> Option<Context> {
        let pairs =
            values
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.to_expr()?)))
                .collect::<Result<
                    Vec<(String, RestrictedExpression)>,
                    cedar_policy::ExpressionConstructionError,
                >>()
                .ok()?;
        Context::from_pairs(pairs).ok()
    }

    fn uid(ty: &str, id: &str) -> EntityUid {
        format!("{ty}::{id:?}").parse().unwrap()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,10}".prop_map(Value::Str),
            any::<i64>().prop_map(Value::Long),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                "10.0.0.1",
                "::1",
                "192.168.0.0/16",
                "fe80::1%eth0",
                "300.1.1.1",
                "",
                "1.2.3"
            ])
            .prop_map(|s| Value::Ip(s.to_owned())),
            prop::sample::select(vec![
                "2026-12-08T00:00:00Z",
                "2026-12-08",
                "2026-12-08T00:00:00.123+0100",
                "2026-13-08T00:00:00Z",
                "yesterday",
            ])
            .prop_map(|s| Value::Datetime(s.to_owned())),
            (
                prop::sample::select(vec!["Workload", "Group", "Ns::Thing"]),
                "[a-z\"\\\\]{0,4}"
            )
                .prop_map(|(t, id)| Value::Entity(uid(t, &id))),
        ]
    }

    /// Arbitrary values: every kind, extension arguments Cedar takes and
    /// some it refuses, records that may hold a key twice.
    pub(in crate::policy::snapshot) fn value() -> impl Strategy<Value = Value> {
        // Keys from a small alphabet, so some records hold a key twice.
        leaf().prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Set),
                prop::collection::vec(("[a-d]{1,2}", inner), 0..5).prop_map(Value::Record),
            ]
        })
    }

    fn context() -> impl Strategy<Value = Vec<(String, Value)>> {
        prop::collection::vec(("[a-d]{1,2}", value()), 0..5)
    }

    /// Whether `from_pairs` could part from a map of the values: a key twice
    /// in some record, or an extension argument its constructor refuses.
    fn unusual(values: &[(String, Value)]) -> bool {
        fn twice(fields: &[(String, Value)]) -> bool {
            let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            keys.windows(2).any(|w| w[0] == w[1]) || fields.iter().any(|(_, v)| bad(v))
        }
        fn bad(v: &Value) -> bool {
            match v {
                Value::Ip(t) => t.parse::<std::net::IpAddr>().is_err() && !t.contains('/'),
                Value::Datetime(t) => !t.starts_with("2026-12-08"),
                Value::Set(items) => items.iter().any(bad),
                Value::Record(fields) => twice(fields),
                _ => false,
            }
        }
        twice(values)
    }

    #[test]
    fn extensions_are_there() {
        assert!(IP_FN.is_some() && DATETIME_FN.is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Built directly or through expressions, a context is the same,
        /// and only an unusual one is left to `from_pairs`.
        #[test]
        fn direct_is_from_pairs(values in context()) {
            let expected = by_expr(&values);
            match direct(&values) {
                Some(ctx) => prop_assert_eq!(Some(ctx), expected),
                None => prop_assert!(unusual(&values), "gave up on {values:?}"),
            }
        }
    }

    #[test]
    fn a_key_twice_or_a_refused_argument_is_left_to_from_pairs() {
        let twice = vec![
            ("a".to_owned(), Value::Long(1)),
            ("a".to_owned(), Value::Long(2)),
        ];
        assert!(direct(&twice).is_none());
        assert!(by_expr(&twice).is_none());
        let nested = vec![(
            "r".to_owned(),
            Value::Record(vec![
                ("x".to_owned(), Value::Bool(true)),
                ("x".to_owned(), Value::Bool(false)),
            ]),
        )];
        assert!(direct(&nested).is_none());
        let refused = vec![("ip".to_owned(), Value::Ip("not an address".to_owned()))];
        assert!(direct(&refused).is_none());
        assert!(by_expr(&refused).is_none());
        let refused = vec![("t".to_owned(), Value::Datetime("noon".to_owned()))];
        assert!(direct(&refused).is_none());
        // The refused value is not remembered as the last one.
        let fine = vec![(
            "t".to_owned(),
            Value::Datetime("2026-12-08T00:00:00Z".to_owned()),
        )];
        assert_eq!(direct(&fine), by_expr(&fine));
    }
}
