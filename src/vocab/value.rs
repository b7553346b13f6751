//! The Cedar data model cedar-gate speaks: entity type names, and a plain,
//! comparable value type for attributes and context.
//!
//! Requests are described with [`Value`] rather than Cedar's own expression
//! types because [`Value`] is `Eq + Hash`: the very same description is the
//! decision-cache key, so "the key covers everything evaluation reads" holds by
//! construction.

use std::str::FromStr;

use cedar_policy::{
    EntityId, EntityTypeName, EntityUid, ExpressionConstructionError, RestrictedExpression,
};

/// A Cedar value as cedar-gate builds it: comparable and hashable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A string.
    Str(String),
    /// A 64-bit integer.
    Long(i64),
    /// A boolean.
    Bool(bool),
    /// An `ipaddr` extension value, from its textual form.
    Ip(String),
    /// A `datetime` extension value, from RFC 3339 text.
    Datetime(String),
    /// An entity reference.
    Entity(EntityUid),
    /// A set.
    Set(Vec<Value>),
    /// A record (attribute order does not matter to Cedar but does to `Eq`;
    /// builders emit a fixed order).
    Record(Vec<(String, Value)>),
}

/// An error converting JSON into a [`Value`].
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// `null` has no Cedar counterpart.
    #[error("`null` is not a Cedar value (at `{0}`)")]
    Null(String),
    /// A number that is not a 64-bit integer.
    #[error("`{1}` is not a 64-bit integer (at `{0}`)")]
    NotInteger(String, String),
    /// A malformed `__entity` or `__extn` escape.
    #[error("invalid escape at `{0}`: {1}")]
    Escape(String, String),
}

// === impl Value ===

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    /// Converts to Cedar's restricted expression.
    pub fn to_expr(&self) -> Result<RestrictedExpression, ExpressionConstructionError> {
        Ok(match self {
            Value::Str(s) => RestrictedExpression::new_string(s.clone()),
            Value::Long(n) => RestrictedExpression::new_long(*n),
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::Ip(ip) => extension(&LAST_IP, ip, |s| RestrictedExpression::new_ip(s)),
            Value::Datetime(dt) => extension(&LAST_DATETIME, dt, |s| {
                RestrictedExpression::new_datetime(s)
            }),
            Value::Entity(uid) => RestrictedExpression::new_entity_uid(uid.clone()),
            Value::Set(items) => RestrictedExpression::new_set(
                items
                    .iter()
                    .map(Value::to_expr)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Value::Record(fields) => RestrictedExpression::new_record(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_expr()?)))
                    .collect::<Result<Vec<_>, ExpressionConstructionError>>()?,
            )?,
        })
    }

    /// Converts Cedar-JSON-style input (as in `entities.json` and request files):
    /// `{"__entity": {"type", "id"}}`, `{"__extn": {"fn": "ip"|"datetime", "arg"}}`.
    pub fn from_json(v: &serde_json::Value, at: &str) -> Result<Self, ValueError> {
        use serde_json::Value as J;
        Ok(match v {
            J::Null => return Err(ValueError::Null(at.to_owned())),
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Long(
                n.as_i64()
                    .ok_or_else(|| ValueError::NotInteger(at.to_owned(), n.to_string()))?,
            ),
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => Value::Set(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Value::from_json(x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => {
                if let Some(e) = map.get("__entity") {
                    let uid = uid_from_json(e).map_err(|m| ValueError::Escape(at.to_owned(), m))?;
                    return Ok(Value::Entity(uid));
                }
                if let Some(x) = map.get("__extn") {
                    let f = x.get("fn").and_then(|f| f.as_str()).unwrap_or_default();
                    let arg = x
                        .get("arg")
                        .and_then(|a| a.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    return match f {
                        "ip" | "ipaddr" => Ok(Value::Ip(arg)),
                        "datetime" => Ok(Value::Datetime(arg)),
                        other => Err(ValueError::Escape(
                            at.to_owned(),
                            format!("unsupported extension function `{other}`"),
                        )),
                    };
                }
                Value::Record(
                    map.iter()
                        .map(|(k, x)| Ok((k.clone(), Value::from_json(x, &format!("{at}.{k}"))?)))
                        .collect::<Result<_, ValueError>>()?,
                )
            }
        })
    }
}

thread_local! {
    static LAST_IP: std::cell::RefCell<Option<(String, RestrictedExpression)>> = const { std::cell::RefCell::new(None) };
    static LAST_DATETIME: std::cell::RefCell<Option<(String, RestrictedExpression)>> = const { std::cell::RefCell::new(None) };
}

/// Builds an extension value, reusing this thread's previous one when the text
/// is the same. cedar-policy's `new_ip` / `new_datetime` re-parse the extension
/// function's name on every call (measured at about 7 % of a Check's CPU), and
/// consecutive requests mostly share the time (second resolution) and often the
/// peer address.
fn extension(
    last: &'static std::thread::LocalKey<
        std::cell::RefCell<Option<(String, RestrictedExpression)>>,
    >,
    text: &str,
    build: fn(&str) -> RestrictedExpression,
) -> RestrictedExpression {
    last.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((t, expr)) = cell.as_ref()
            && t == text
        {
            return expr.clone();
        }
        let expr = build(text);
        *cell = Some((text.to_owned(), expr.clone()));
        expr
    })
}

/// Parses `{"type": "T", "id": "x"}` or the string form `T::"x"`.
pub fn uid_from_json(v: &serde_json::Value) -> Result<EntityUid, String> {
    if let Some(s) = v.as_str() {
        return EntityUid::from_str(s).map_err(|e| format!("`{s}` is not an entity uid: {e}"));
    }
    let ty = v
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or("missing string `type`")?;
    let id = v
        .get("id")
        .and_then(|t| t.as_str())
        .ok_or("missing string `id`")?;
    uid(ty, id).map_err(|e| format!("bad entity type `{ty}`: {e}"))
}

/// Builds an entity uid from a type name and an id.
pub fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(ty).map_err(|e| e.to_string())?,
        EntityId::new(id),
    ))
}

/// `uid` as Cedar prints it (`Workload::"spiffe://example.org/..."`). Ids of
/// plain printable ASCII, which Cedar prints verbatim, are written directly;
/// anything else goes through Cedar's own `Display` (which escapes).
pub fn uid_string(uid: &EntityUid) -> String {
    let ty = uid.type_name();
    let id = uid.id().unescaped();
    if ty.namespace_components().next().is_some() || !printed_verbatim(id) {
        return uid.to_string();
    }
    let basename = ty.basename();
    let mut out = String::with_capacity(basename.len() + id.len() + 4);
    out.push_str(basename);
    out.push_str("::\"");
    out.push_str(id);
    out.push('"');
    out
}

/// Whether Cedar prints every byte of `id` as it is: printable ASCII (space
/// included) other than `"`, `\` and `'`. Every byte is tested, without
/// stopping at the first bad one, so the compiler checks many bytes per
/// instruction (ids are mostly good, and this runs three times a Check).
fn printed_verbatim(id: &str) -> bool {
    id.as_bytes().iter().fold(true, |ok, &b| {
        ok & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\') & (b != b'\'')
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        let v = serde_json::json!({"a": {"__entity": {"type": "Group", "id": "x"}}, "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "n": 3});
        let Value::Record(fields) = Value::from_json(&v, "ctx").unwrap() else {
            unreachable!()
        };
        assert!(
            fields
                .iter()
                .any(|(k, v)| k == "a" && matches!(v, Value::Entity(_)))
        );
        assert!(
            fields
                .iter()
                .any(|(k, v)| k == "ip" && *v == Value::Ip("10.0.0.1".into()))
        );
    }

    #[test]
    fn json_rejects_floats_and_null() {
        assert!(Value::from_json(&serde_json::json!(1.5), "x").is_err());
        assert!(Value::from_json(&serde_json::json!(null), "x").is_err());
    }

    #[test]
    fn uid_string_is_cedars_at_every_ascii_byte_and_beyond() {
        let mut ids: Vec<String> = (0u8..=0x7f)
            .map(|b| format!("spiffe://td/a{}b", b as char))
            .collect();
        ids.extend(
            [
                "", " ", "\u{80}", "\u{a0}", "é", "\u{200b}", "\u{301}x", "x\u{301}", "\u{fffd}",
            ]
            .map(str::to_owned),
        );
        // Past the widths the byte test may take at a time, bad byte last.
        ids.extend((0..70).map(|n| format!("{}\"", "a".repeat(n))));
        ids.extend((0..70).map(|n| "a".repeat(n)));
        for id in ids {
            let uid = crate::vocab::builtin_uid(crate::vocab::EntityType::Workload, &id);
            assert_eq!(uid_string(&uid), uid.to_string(), "{id:?}");
        }
    }

    proptest::proptest! {
        /// The fast rendering is Cedar's, for any id (escaping included).
        #[test]
        fn uid_string_is_cedars(id in "\\PC{0,24}|[ -~]{0,24}|(?s).{0,24}|[\\x00-\\x20\\x7e-\\u{a0}\"'\\\\a]{0,40}", ty in "[A-Z][a-z]{0,6}(::[A-Z][a-z]{0,6})?") {
            let uid = EntityUid::from_type_name_and_id(
                EntityTypeName::from_str(&ty).unwrap(),
                EntityId::new(&id),
            );
            proptest::prop_assert_eq!(uid_string(&uid), uid.to_string());
        }
    }
}
