//! The architecture, checked: which module may import which (ARCHITECTURE.md,
//! "Layers"), no import circles between components, and no long functions.
//!
//! Reads `src/**/*.rs` as text: every `use crate::...` and every inline
//! `crate::a::b` path outside `#[cfg(test)]` code is an edge from the file's
//! module to the longest module path it names. Each module belongs to the
//! component with the longest matching prefix in [`LAYERS`]; an edge may only
//! point to a component of a lower rank, or stay inside its own component.
//! Std only, so it builds in seconds and runs with `cargo test`.

// Tests may unwrap and panic: a failing assertion is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Components, lowest rank first. A module may import its own component and
/// components of a strictly lower rank; components of one rank are peers that
/// know nothing of each other.
const LAYERS: &[(&str, u8)] = &[
    // The Cedar vocabulary and the canonical request target: leaves.
    ("vocab", 0),
    ("target", 0),
    // Following files through Kubernetes `..data` swaps (credentials, key store).
    ("watch", 0),
    // The SPIFFE id grammar (workload ids and their attributes), the domain
    // request, and metrics (plain values in, Prometheus out).
    ("identity::spiffe", 1),
    ("request", 1),
    ("record::metrics", 1),
    // The three independent parts of a decision.
    ("identity", 2),
    ("classify", 2),
    ("policy", 2),
    // Provider credentials the gateway holds (their files, values, route rules).
    ("credentials", 2),
    // The configuration file: composed from the parts' own config types.
    ("config", 3),
    // The decision core: resolve, classify, ask, decide, answer.
    ("decide", 4),
    // Recording a decision.
    ("record", 5),
    // The edge (the only code naming `envoy_types`) and the admin server.
    ("wire", 6),
    // The admin server (metrics, health, the service's readiness) and the
    // policy analysis engine.
    ("admin", 7),
    ("analysis", 7),
    // Wiring and the command line.
    ("app", 8),
    ("cli", 8),
];

/// Longest non-test function, in lines (signature to closing brace).
const MAX_FN_LINES: usize = 80;

/// Edges that break the layering today, `(from module, to module)`, each to be
/// removed with the import. Listed so the check can land before the fixes; an
/// entry that no longer occurs fails the test (delete it).
const KNOWN_EDGES: &[(&str, &str)] = &[];

/// Functions over [`MAX_FN_LINES`] today, `(file, function)`; same rule.
const KNOWN_LONG_FNS: &[(&str, &str)] = &[];

/// The edge: the only code that names the Envoy wire types.
const EDGE: &str = "src/wire/";

/// Files outside [`EDGE`] that name `envoy_types` today; same rule.
const KNOWN_WIRE_OUTSIDE_EDGE: &[&str] = &[];

#[test]
fn imports_follow_the_layers() {
    let graph = Graph::read(&src_dir());
    let mut wrong = BTreeSet::new();
    for (from, to) in graph.edges() {
        let (a, ra) = component(from);
        let (b, rb) = component(to);
        if a != b && rb >= ra {
            wrong.insert((from.to_owned(), to.to_owned()));
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_EDGES
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = wrong.difference(&known).collect();
    let gone: Vec<_> = known.difference(&wrong).collect();
    assert!(
        new.is_empty(),
        "imports against the layering (ARCHITECTURE.md): {}",
        describe(&new)
    );
    assert!(gone.is_empty(), "fixed, remove from KNOWN_EDGES: {gone:?}");
}

#[test]
fn no_import_circles_between_components() {
    let graph = Graph::read(&src_dir());
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in graph.edges() {
        let (a, _) = component(from);
        let (b, _) = component(to);
        if a != b {
            edges.entry(a).or_default().insert(b);
        }
    }
    let circles = circles(&edges);
    assert!(circles.is_empty(), "import circles: {circles:?}");
}

#[test]
fn functions_are_short() {
    let mut long = BTreeSet::new();
    let src = src_dir();
    let modules: BTreeMap<String, PathBuf> = rust_files(&src)
        .into_iter()
        .map(|f| (module_of(&src, &f), f))
        .collect();
    let test_only = test_only_modules(&modules);
    for (module, file) in &modules {
        if test_only.contains(module) {
            continue;
        }
        let file = file.as_path();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let rel = rel(file);
        for (name, lines) in functions(&strip_tests(&text)) {
            if lines > MAX_FN_LINES {
                long.insert((rel.clone(), name));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_LONG_FNS
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = long.difference(&known).collect();
    let gone: Vec<_> = known.difference(&long).collect();
    assert!(
        new.is_empty(),
        "functions over {MAX_FN_LINES} lines:{}",
        new.iter()
            .map(|(f, n)| format!("\n    (\"{f}\", \"{n}\"),"))
            .collect::<String>()
    );
    assert!(
        gone.is_empty(),
        "shortened, remove from KNOWN_LONG_FNS: {gone:?}"
    );
}

#[test]
fn wire_types_stay_at_the_edge() {
    let mut outside = BTreeSet::new();
    for file in rust_files(&src_dir()) {
        let rel = rel(&file);
        if rel.starts_with(EDGE) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if blank_literals(&strip_tests(&text)).contains("envoy_types") {
            outside.insert(rel);
        }
    }
    let known: BTreeSet<String> = KNOWN_WIRE_OUTSIDE_EDGE
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    let new: Vec<_> = outside.difference(&known).collect();
    let gone: Vec<_> = known.difference(&outside).collect();
    assert!(new.is_empty(), "`envoy_types` outside {EDGE}: {new:?}");
    assert!(
        gone.is_empty(),
        "fixed, remove from KNOWN_WIRE_OUTSIDE_EDGE: {gone:?}"
    );
}

#[test]
fn the_checker_sees_imports_and_functions() {
    let text = "use crate::a::{b, c::{self, D}};\nfn f() {\n let s = \"}\"; let c = '{';\n crate::e::g();\n}\n#[cfg(test)]\nmod tests {\n use crate::z;\n}\n";
    let stripped = strip_tests(text);
    let mut paths = Vec::new();
    crate_paths(&stripped, &mut paths);
    assert_eq!(paths, ["a::b", "a::c", "a::c::D", "e::g"]);
    assert_eq!(functions(&stripped), [("f".to_owned(), 4)]);
    let mut edges = BTreeMap::new();
    edges.insert("x", BTreeSet::from(["y"]));
    edges.insert("y", BTreeSet::from(["x"]));
    assert_eq!(circles(&edges), [vec!["x".to_owned(), "y".to_owned()]]);
}

// --- the import graph ---

struct Graph {
    /// Module path (`policy::snapshot`) to the module paths it imports.
    imports: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let files = rust_files(src);
        let modules: BTreeMap<String, PathBuf> = files
            .iter()
            .map(|f| (module_of(src, f), f.clone()))
            .collect();
        let test_only = test_only_modules(&modules);
        let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, file) in &modules {
            if test_only.contains(module) || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut paths = Vec::new();
            crate_paths(&strip_tests(&text), &mut paths);
            for path in paths {
                if let Some(target) = resolve(&modules, &path)
                    && target != *module
                {
                    imports.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        Self { imports }
    }

    fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.imports
            .iter()
            .flat_map(|(a, bs)| bs.iter().map(move |b| (a.as_str(), b.as_str())))
    }
}

/// The component of a module (longest prefix in [`LAYERS`]) and its rank.
fn component(module: &str) -> (&'static str, u8) {
    LAYERS
        .iter()
        .filter(|(name, _)| {
            module == *name
                || module
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(name, _)| name.len())
        .map_or(("<unlisted>", u8::MAX), |(name, rank)| (*name, *rank))
}

fn describe(edges: &[&(String, String)]) -> String {
    edges
        .iter()
        .map(|(a, b)| {
            let (ca, ra) = component(a);
            let (cb, rb) = component(b);
            format!("\n    (\"{a}\", \"{b}\"), // {ca} (rank {ra}) -> {cb} (rank {rb})")
        })
        .collect()
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rel(file: &Path) -> String {
    file.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `src/policy/mod.rs` -> `policy`, `src/policy/load.rs` -> `policy::load`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// Modules declared `#[cfg(test)] mod x;`.
fn test_only_modules(modules: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (module, file) in modules {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            // Other attributes may sit between `#[cfg(test)]` and the `mod`.
            if let Some(name) = lines
                .find(|l| !l.starts_with("#["))
                .and_then(|l| l.strip_prefix("mod "))
                .and_then(|l| l.strip_suffix(';'))
            {
                out.insert(if module.is_empty() {
                    name.to_owned()
                } else {
                    format!("{module}::{name}")
                });
            }
        }
    }
    out
}

fn resolve(modules: &BTreeMap<String, PathBuf>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// Every `crate::...` path in `text`, with `use` groups expanded.
fn crate_paths(text: &str, out: &mut Vec<String>) {
    let code = blank_literals(text);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = path_end(rest);
        let tree: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
        expand("", &tree, out);
        rest = &rest[end..];
    }
}

/// Where a path (with `{...}` groups) ends.
fn path_end(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if depth > 0 || c.is_alphanumeric() || c == '_' || c == ':' => {}
            c if c.is_whitespace() && s[..i].ends_with("::") => {}
            _ => return i,
        }
        if depth == 0 && c == '}' {
            return i + 1;
        }
    }
    s.len()
}

fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let Some(open) = tree.find('{') else {
        let item = tree.split(" as ").next().unwrap_or(tree);
        let path = format!("{prefix}{item}");
        let path = path.trim_end_matches("::self").trim_end_matches("::");
        if !path.is_empty() {
            out.push(path.to_owned());
        }
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                expand(&head, &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    expand(&head, &inner[start..], out);
}

/// `text` with every `#[cfg(test)]` item (a module, a function) removed.
fn strip_tests(text: &str) -> String {
    let code = blank_literals(text);
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    let mut search = 0;
    while let Some(at) = code[search..].find("#[cfg(test)]").map(|i| i + search) {
        let item_end = item_end(&code, at + "#[cfg(test)]".len());
        out.push_str(&text[from..at]);
        // Keep the line count, so function lengths stay true.
        out.extend(text[at..item_end].chars().filter(|c| *c == '\n'));
        from = item_end;
        search = item_end;
    }
    out.push_str(&text[from..]);
    out
}

/// The end of the item starting at `from`: after its `;` or its braced body.
fn item_end(code: &str, from: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in code[from..].char_indices() {
        match c {
            ';' if depth == 0 => return from + i + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return from + i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Each `fn` (named) with its length in lines, from the `fn` line to the
/// closing brace. Nested functions count on their own and in their parent.
fn functions(text: &str) -> Vec<(String, usize)> {
    let code = blank_literals(text);
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(at) = code[search..].find("fn ").map(|i| i + search) {
        search = at + 3;
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body: the first `{` before any `;` (a declaration has none).
        let Some(open) = code[at..].find(['{', ';']).map(|i| i + at) else {
            continue;
        };
        if code.as_bytes()[open] == b';' {
            continue;
        }
        let end = item_end(&code, open);
        let lines = code[at..end].matches('\n').count() + 1;
        out.push((name, lines));
    }
    out
}

/// `text` with comments, strings and char literals replaced by spaces (line
/// breaks kept), so braces and `crate::` inside them do not count.
fn blank_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut out[from..to.min(b.len())] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = text[body..]
                    .find(&close)
                    .map_or(b.len(), |n| body + n + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), else a lifetime.
                let end = if b.get(i + 1) == Some(&b'\\') {
                    text[i + 2..].find('\'').map(|n| i + 2 + n + 1)
                } else {
                    let c = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + c) == Some(&b'\'')).then_some(i + 2 + c)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i, end);
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Strongly connected components of more than one node (Tarjan).
fn circles(edges: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for &w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                scc.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for &v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
