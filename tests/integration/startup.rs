//! What the `cedar-gate serve` process prints on its own stderr: a fatal error once,
//! without its cause repeated, and logs without terminal colour codes when stderr is a
//! file or a pipe (a container runtime, systemd, a log collector).

use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::common::gate::{CedarGate, GateOptions};
use crate::common::repo_path;

#[test]
fn a_port_in_use_is_reported_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
        .args(["serve", "--policy-dir"])
        .arg(repo_path("cedar"))
        .args(["--grpc-listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
    // The io error ("Address already in use (os error 98)" on Linux): said once.
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
}

#[tokio::test]
async fn text_logs_off_a_terminal_have_no_colour_codes() {
    let gate = CedarGate::start_with(GateOptions {
        config:
            "identity:\n  trust_domains: [example.org]\nlogging:\n  format: text\n  level: info\n"
                .to_owned(),
        ..GateOptions::default()
    })
    .await;
    let logs = gate.logs();
    assert!(logs.contains("cedar-gate listening"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in a log file: {logs:?}"
    );
}
