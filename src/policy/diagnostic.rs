//! Readable diagnostics (`file:line:column: message`) for Cedar errors.

use std::fmt;

/// One problem found while loading a policy directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// File name inside the policy directory, when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, self.column) {
            (Some(file), Some(line), Some(col)) => write!(f, "{file}:{line}:{col}: ")?,
            (Some(file), _, _) => write!(f, "{file}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

// === impl Diagnostic ===

impl Diagnostic {
    /// A diagnostic about a whole file.
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: Some(file.to_owned()),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// Converts a Cedar (miette) error into diagnostics, resolving its labelled
    /// spans against `source`, the text the error's offsets refer to. Related
    /// errors (Cedar reports several parse errors as one) become one diagnostic each.
    pub fn from_miette(file: &str, source: &str, err: &dyn miette::Diagnostic) -> Vec<Self> {
        let related: Vec<&dyn miette::Diagnostic> =
            err.related().map(|r| r.collect()).unwrap_or_default();
        if !related.is_empty() {
            return related
                .into_iter()
                .flat_map(|r| Self::from_miette(file, source, r))
                .collect();
        }
        let mut message = err.to_string();
        if let Some(help) = err.help() {
            message.push_str(&format!(" (help: {help})"));
        }
        let offset = err
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|l| l.offset());
        let (line, column) = match offset {
            Some(offset) => {
                let (l, c) = line_col(source, offset);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        vec![Self {
            file: Some(file.to_owned()),
            line,
            column,
            message,
        }]
    }
}

/// Where an `entities.json` problem is: the entity (by its index in the array), and
/// the attribute when the message names one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityAt {
    /// Index of the entity in the top-level array.
    pub index: Option<usize>,
    /// The attribute the problem is in.
    pub attr: Option<String>,
}

// === impl Diagnostic (entities.json) ===

impl Diagnostic {
    /// A diagnostic about `entities.json`, located at the entity (and its attribute)
    /// when known: `entities.json:27:20: entity `Group::"x"`, attribute `description`:
    /// <message>`. `list` is the parsed array, `text` the file as written.
    pub fn entity(
        file: &str,
        text: &str,
        list: &[serde_json::Value],
        at: &EntityAt,
        message: &str,
    ) -> Self {
        let Some(index) = at.index else {
            return Self::file(file, message);
        };
        let starts = array_element_offsets(text);
        let start = starts.get(index).copied();
        let end = starts.get(index + 1).copied().unwrap_or(text.len());
        let element = start.and_then(|s| Some((s, text.get(s..end)?)));
        let attr_offset = element.and_then(|(s, element)| match at.attr.as_deref() {
            Some(attr) => {
                let attrs = element.find("\"attrs\"")?;
                key_offset(element.get(attrs..)?, attr).map(|k| s + attrs + k)
            }
            // A parent of the wrong type: point at the parents.
            None if message.contains("ancestor") => key_offset(element, "parents").map(|k| s + k),
            None => None,
        });
        let label = list
            .get(index)
            .and_then(|e| e.get("uid"))
            .and_then(|u| crate::vocab::uid_from_json(u).ok())
            .map_or_else(|| format!("entity #{index}"), |u| format!("entity `{u}`"));
        let mut prefix = label;
        if let Some(attr) = &at.attr {
            prefix.push_str(&format!(", attribute `{attr}`"));
        }
        let (line, column) = match attr_offset.or(start) {
            Some(o) => {
                let (l, c) = line_col(text, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Self {
            file: Some(file.to_owned()),
            line,
            column,
            message: format!("{prefix}: {message}"),
        }
    }

    /// A JSON syntax error, at serde's line and column.
    pub fn json_syntax(file: &str, err: &serde_json::Error) -> Self {
        Self {
            file: Some(file.to_owned()),
            line: (err.line() > 0).then_some(err.line()),
            column: (err.line() > 0).then_some(err.column()),
            message: format!("not valid JSON: {err}"),
        }
    }
}

/// Locates a Cedar error about a whole `entities.json`: the first entity that fails
/// on its own (parsed alone against the schema), and the attribute its causes name.
/// The message is Cedar's, with every cause and the help.
pub fn entities_error(
    file: &str,
    text: &str,
    list: &[serde_json::Value],
    err: &cedar_policy::entities_errors::EntitiesError,
    schema: &cedar_policy::Schema,
) -> Diagnostic {
    let alone = |e: &serde_json::Value| {
        cedar_policy::Entities::from_json_value(
            serde_json::Value::Array(vec![e.clone()]),
            Some(schema),
        )
        .err()
    };
    // Only on the error path: one parse per entity until the culprit.
    let culprit = list
        .iter()
        .enumerate()
        .find_map(|(i, e)| alone(e).map(|err| (i, err)));
    let (index, mut message) = match &culprit {
        Some((i, own)) => (Some(*i), cause_chain(own)),
        None => (None, cause_chain(err)),
    };
    let help = match &culprit {
        Some((_, own)) => miette::Diagnostic::help(own).map(|h| h.to_string()),
        None => miette::Diagnostic::help(err).map(|h| h.to_string()),
    };
    if let Some(help) = help {
        message.push_str(&format!(" (help: {help})"));
    }
    let at = EntityAt {
        index,
        attr: named_attribute(&message),
    };
    Diagnostic::entity(file, text, list, &at, &message)
}

/// An error with every cause under it, outermost first (`a: b: c`). A cause whose
/// text the message already contains is left out, so nothing is said twice.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The first attribute a Cedar entity error names (`attribute `x``, `attribute "x"`).
pub fn named_attribute(message: &str) -> Option<String> {
    for open in ["attribute `", "attribute \"", "attribute '"] {
        if let Some(i) = message.find(open) {
            let rest = message.get(i + open.len()..)?;
            let close = open.chars().last()?;
            let name = rest.get(..rest.find(close)?)?;
            if !name.is_empty() {
                return Some(name.to_owned());
            }
        }
    }
    None
}

/// Byte offsets at which the elements of the top-level JSON array start. Strings
/// are skipped, so brackets inside them do not count.
fn array_element_offsets(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut expect) = (0usize, false, false, false);
    for (i, c) in text.char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if depth == 1 && expect && !c.is_whitespace() && c != ',' && c != ']' {
            out.push(i);
            expect = false;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    out
}

/// Offset of `"key"` used as an object key (followed by `:`) in `text`.
fn key_offset(text: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = text.get(from..)?.find(&quoted) {
        let at = from + i;
        let after = text.get(at + quoted.len()..)?;
        if after.trim_start().starts_with(':') {
            return Some(at);
        }
        from = at + quoted.len();
    }
    None
}

/// 1-based line and column of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn array_elements_skip_strings_and_nesting() {
        let text = "[\n {\"a\": \"[x, y]\"},\n {\"b\": [1, 2]} ]";
        let starts = array_element_offsets(text);
        assert_eq!(starts.len(), 2);
        assert_eq!(line_col(text, starts[0]), (2, 2));
        assert_eq!(line_col(text, starts[1]), (3, 2));
    }

    #[test]
    fn an_entity_diagnostic_points_at_the_attribute() {
        let text = "[\n {\"uid\": {\"type\": \"Group\", \"id\": \"g\"},\n  \"attrs\": {\"description\": 42}}\n]";
        let list: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
        let at = EntityAt {
            index: Some(0),
            attr: named_attribute("in attribute `description` on `Group::\"g\"`"),
        };
        let d = Diagnostic::entity("entities.json", text, &list, &at, "type mismatch");
        assert_eq!(
            d.to_string(),
            "entities.json:3:13: entity `Group::\"g\"`, attribute `description`: type mismatch"
        );
    }
}
