//! Every fuzz target, on stable and in `make test`'s one build: its committed seeds, the
//! local corpus a `make fuzz` run left (if any), then `FUZZ_SMOKE_RUNS` (default 2,000)
//! mutations of them, chosen by a fixed-seed generator so a failure repeats.
//!
//! This keeps the targets compiling and their invariants true against the code as it is;
//! it is not coverage-guided fuzzing (that is `make fuzz`: libFuzzer, nightly). An input that
//! panics is written to `fuzz/artifacts/<target>/smoke-<run>` and named in the failure, ready
//! for `cargo fuzz run --features libfuzzer <target> <file>`.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cedar_gate_fuzz::{TARGETS, Target};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message;

const DEFAULT_RUNS: usize = 2_000;
/// libFuzzer's `-max_len` in `make fuzz`.
const MAX_LEN: usize = 65_536;
/// Byte strings the parsers treat specially, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%2F",
    b"%25",
    b"/",
    b"//",
    b"..",
    b"\\",
    b";",
    b"?",
    b"#",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"\0",
    b"\xff",
    b"\xc3\xa9",
    b"\xef\xbb\xbf",
    b"spiffe://",
    b"URI=",
    b"By=",
    b"-----BEGIN CERTIFICATE-----",
    b".",
    b"eyJ",
    b"model",
    b"jsonrpc",
    b"tools/call",
    b"=?base64?",
    b"\\u0000",
    b"1e999",
    b"-0",
    b"null",
];

#[test]
fn spiffe_id() {
    smoke("spiffe_id");
}

#[test]
fn xfcc() {
    smoke("xfcc");
}

#[test]
fn cert_pem() {
    smoke("cert_pem");
}

#[test]
fn check_request() {
    smoke("check_request");
}

#[test]
fn classify_body() {
    smoke("classify_body");
}

#[test]
fn jwt_token() {
    smoke("jwt_token");
}

#[test]
fn request_target() {
    smoke("request_target");
}

/// The targets listed in the library, the binaries in `Cargo.toml`, the libFuzzer entry
/// files and `make fuzz`'s list are the same set, and each entry calls its own target:
/// nothing builds the entries in `make test`, so this is what keeps them from drifting.
#[test]
fn every_target_has_a_binary_an_entry_and_a_make_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let make = fs::read_to_string(root.join("../mk/bench.mk")).unwrap();
    let make_list = make
        .lines()
        .find_map(|l| l.strip_prefix("FUZZ_TARGETS :="))
        .expect("FUZZ_TARGETS in mk/bench.mk");
    let mut make_names: Vec<&str> = make_list.split_whitespace().collect();
    let mut names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    make_names.sort_unstable();
    names.sort_unstable();
    assert_eq!(names, make_names, "mk/bench.mk FUZZ_TARGETS");
    for name in names {
        let bin = format!(
            "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"\nrequired-features = [\"libfuzzer\"]"
        );
        assert!(
            manifest.contains(&bin),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let entry = fs::read_to_string(root.join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            entry.contains(&format!("cedar_gate_fuzz::targets::{name}::run(data)")),
            "fuzz_targets/{name}.rs does not call its target"
        );
    }
    // No seed or entry directory for a target that is not listed.
    for dir in ["seeds", "fuzz_targets"] {
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let listed = TARGETS.iter().any(|(name, _)| *name == stem);
            let seed_file = dir == "seeds" && path.is_file();
            assert!(
                listed || seed_file,
                "{}: not a listed target",
                path.display()
            );
        }
    }
}

fn smoke(name: &str) {
    let run = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, run)| *run)
        .expect("a listed target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = read_dir_files(&root.join("seeds").join(name));
    assert!(!inputs.is_empty(), "fuzz/seeds/{name} has no seeds");
    inputs.extend(read_dir_files(&root.join("corpus").join(name)));
    for (i, input) in inputs.iter().enumerate() {
        execute(name, run, input, &format!("input-{i}"));
    }
    let runs = std::env::var("FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    let mut rng = Rng::new(name);
    // Byte edits rarely leave a protobuf decodable: half of `check_request`'s runs edit the
    // fields of a decoded seed instead, so they reach identity, classification and Cedar.
    let requests: Vec<CheckRequest> = match name {
        "check_request" => inputs
            .iter()
            .filter_map(|i| CheckRequest::decode(i.as_slice()).ok())
            .collect(),
        _ => Vec::new(),
    };
    for i in 0..runs {
        let input = if !requests.is_empty() && i % 2 == 1 {
            mutate_check_request(&mut rng, &requests)
        } else {
            mutate(&mut rng, &inputs)
        };
        execute(name, run, &input, &format!("smoke-{i}"));
    }
}

/// A seed `CheckRequest` with one to three of its fields (method, path, host, a header
/// name or value, the body, the raw body, the peer's principal or certificate) edited as
/// bytes, encoded again.
fn mutate_check_request(rng: &mut Rng, requests: &[CheckRequest]) -> Vec<u8> {
    let mut check = requests[rng.below(requests.len())].clone();
    let attributes = check.attributes.get_or_insert_with(Default::default);
    for _ in 0..=rng.below(3) {
        let field = rng.below(9);
        if field >= 7 {
            let peer = attributes.source.get_or_insert_with(Default::default);
            let text = if field == 7 {
                &mut peer.principal
            } else {
                &mut peer.certificate
            };
            edit_text(rng, text);
            continue;
        }
        let request = attributes.request.get_or_insert_with(Default::default);
        let http = request.http.get_or_insert_with(Default::default);
        match field {
            0 => edit_text(rng, &mut http.method),
            1 => edit_text(rng, &mut http.path),
            2 => edit_text(rng, &mut http.host),
            3 | 4 => {
                let mut headers: Vec<(String, String)> = http.headers.drain().collect();
                headers.sort();
                if headers.is_empty() {
                    headers.push(("content-type".to_owned(), "application/json".to_owned()));
                }
                let i = rng.below(headers.len());
                let (name, value) = &mut headers[i];
                edit_text(rng, if field == 3 { name } else { value });
                http.headers = headers.into_iter().collect();
            }
            5 => edit_text(rng, &mut http.body),
            _ => http.raw_body = mutate(rng, std::slice::from_ref(&http.raw_body)),
        }
    }
    check.encode_to_vec()
}

fn edit_text(rng: &mut Rng, text: &mut String) {
    let bytes = mutate(rng, &[std::mem::take(text).into_bytes()]);
    *text = String::from_utf8_lossy(&bytes).into_owned();
}

/// Runs one input; on a panic, saves it under `fuzz/artifacts/<name>/` and fails naming it.
fn execute(name: &str, run: Target, input: &[u8], label: &str) {
    if panic::catch_unwind(AssertUnwindSafe(|| run(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name);
    let file = dir.join(label);
    let saved = fs::create_dir_all(&dir).and_then(|()| fs::write(&file, input));
    panic!(
        "fuzz target {name} panicked on {label} ({} bytes){}",
        input.len(),
        match saved {
            Ok(()) => format!(
                "; saved as {}, rerun with: cargo fuzz run --features libfuzzer {name} {}",
                file.display(),
                file.display()
            ),
            Err(e) => format!("; could not save it: {e}"),
        }
    );
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// One to four edits of a random input: the kinds of change libFuzzer's own mutator makes
/// (bit flips, byte changes, insertions, deletions, copies, splices with another input,
/// special tokens), without its coverage feedback.
fn mutate(rng: &mut Rng, inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut data = inputs[rng.below(inputs.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = rng.byte();
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                data.splice(at..at, bytes);
            }
            3 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            4 if at < data.len() => {
                let end = (at + 1 + rng.below(32)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
            5 => {
                let other = &inputs[rng.below(inputs.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            6 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            _ => data.truncate(at),
        }
    }
    data.truncate(MAX_LEN);
    data
}

/// xorshift64*, seeded by the target's name: the same inputs on every run and machine.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Self {
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[7]
    }
}
