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
}
