//! The HTTP API end to end: a real server on 127.0.0.1, real requests.

use std::sync::Arc;

use host::runtime::ExecutionMode;
use serde_json::json;

use crate::support::{TestServer, plugin_dir, runner_for, runtime_config, wat_plugin};

async fn server_with(names: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = plugin_dir(names);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    (TestServer::start(Arc::new(runner), 256).await, dir)
}

#[tokio::test]
async fn hello_answers_43_for_21() {
    let (server, _dir) = server_with(&["hello"]).await;
    let (status, body) = server.run("hello", 21).await;
    assert_eq!((status, body), (200, json!({ "output": 43 })));
}

#[tokio::test]
async fn errors_have_stable_codes_and_statuses() {
    let (server, dir) = server_with(&["hello", "abi"]).await;
    std::fs::write(
        dir.path().join("trap.wasm"),
        wat_plugin("i32.const 0", "unreachable", "i32.const 0"),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();

    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "invalid_json"),
        (r#"{"plugin": "hello""#, 400, "invalid_json"),
        (r#"{"input": 1}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello"}"#, 400, "invalid_request"),
        (
            r#"{"plugin": "hello", "input": "21"}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"plugin": "hello", "input": 2.5}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"plugin": "hello", "input": 2147483648}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"plugin": "hello", "input": 1, "extra": true}"#,
            400,
            "invalid_request",
        ),
        (r#"{"plugin": 7, "input": 1}"#, 400, "invalid_request"),
        (r#"{"plugin": "", "input": 1}"#, 400, "invalid_plugin_name"),
        (
            r#"{"plugin": "../hello", "input": 1}"#,
            400,
            "invalid_plugin_name",
        ),
        (
            r#"{"plugin": "missing", "input": 1}"#,
            404,
            "plugin_not_found",
        ),
        (r#"{"plugin": "abi", "input": -1}"#, 422, "invalid_argument"),
        (r#"{"plugin": "abi", "input": 50000}"#, 500, "plugin_error"),
        (r#"{"plugin": "trap", "input": 1}"#, 500, "plugin_trapped"),
        (r#"{"plugin": "broken", "input": 1}"#, 500, "abi_violation"),
    ];
    for &(body, status, code) in cases {
        let (got_status, got) = server.run_raw(body).await;
        assert_eq!(
            (got_status, got["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {got}"
        );
        let message = got["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.contains("../"),
            "{body}: {got}"
        );
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (server, _dir) = server_with(&["hello"]).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = server
            .client
            .request(method.clone(), server.url("/run"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_wrong_content_types_415() {
    let (server, _dir) = server_with(&["hello"]).await;
    let huge = format!(
        r#"{{"plugin": "hello", "input": 1, "pad": "{}"}}"#,
        "x".repeat(host::api::MAX_BODY_BYTES)
    );
    let (status, body) = server.run_raw(&huge).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    let response = server
        .client
        .post(server.url("/run"))
        .header("content-type", "text/plain")
        .body(r#"{"plugin": "hello", "input": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_all_get_their_own_answer() {
    let (server, _dir) = server_with(&["hello", "abi"]).await;
    let server = Arc::new(server);
    let requests = (0..200).map(|i| {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let (plugin, expected) = if i % 2 == 0 {
                ("hello", 2 * i + 1)
            } else {
                ("abi", i * i)
            };
            let (status, body) = server.run(plugin, i).await;
            assert_eq!(
                (status, body),
                (200, json!({ "output": expected })),
                "{plugin}({i})"
            );
        })
    });
    for request in requests.collect::<Vec<_>>() {
        request.await.unwrap();
    }
}
