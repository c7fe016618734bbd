//! The HTTP API: what it answers through the router itself (`app().oneshot`), and, where
//! connections matter (methods, headers, bodies on the wire), a real server on 127.0.0.1.

use std::sync::Arc;

use plugin_host::runtime::ExecutionMode;
use serde_json::json;

use crate::support::{TestServer, app_state, local_store, plugin_dir, runtime_config, wat_plugin};

async fn server_with(names: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = plugin_dir(names);
    let state = app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), 256);
    (TestServer::start(state).await, dir)
}

/// The same routes and state, without a socket.
fn app_with(names: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = plugin_dir(names);
    let state = app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), 256);
    (TestServer::in_memory(state), dir)
}

#[tokio::test]
async fn hello_answers_43_for_21() {
    let (server, _dir) = app_with(&["hello"]);
    let (status, body) = server.run("hello", 21).await;
    assert_eq!((status, body), (200, json!({ "output": 43 })));
}

#[tokio::test]
async fn errors_have_stable_codes_and_statuses() {
    let (server, dir) = app_with(&["hello", "abi"]);
    std::fs::write(dir.path().join("trap.wasm"), wat_plugin("i32.const 0", "unreachable", "i32.const 0")).unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();

    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "invalid_json"),
        (r#"{"plugin": "hello""#, 400, "invalid_json"),
        ("", 400, "invalid_json"),
        (r#"{"plugin": "hello", "input": 21} trailing"#, 400, "invalid_json"),
        (r#"{"input": 1}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello"}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello", "input": "21"}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello", "input": 2.5}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello", "input": 2147483648}"#, 400, "invalid_request"),
        (r#"{"plugin": "hello", "input": 1, "extra": true}"#, 400, "invalid_request"),
        (r#"{"plugin": 7, "input": 1}"#, 400, "invalid_request"),
        (r#"{"plugin": "", "input": 1}"#, 400, "invalid_plugin_name"),
        (r#"{"plugin": "../hello", "input": 1}"#, 400, "invalid_plugin_name"),
        (r#"{"plugin": "missing", "input": 1}"#, 404, "plugin_not_found"),
        (r#"{"plugin": "abi", "input": -1}"#, 422, "invalid_argument"),
        (r#"{"plugin": "abi", "input": 50000}"#, 500, "plugin_error"),
        (r#"{"plugin": "trap", "input": 1}"#, 500, "plugin_trapped"),
        (r#"{"plugin": "broken", "input": 1}"#, 500, "abi_violation"),
    ];
    for &(body, status, code) in cases {
        let (got_status, got) = server.run_raw(body).await;
        assert_eq!((got_status, got["error"]["code"].as_str()), (status, Some(code)), "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty() && !message.contains("../"), "{body}: {got}");
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (server, _dir) = server_with(&["hello"]).await;
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let response = server.client.request(method.clone(), server.url("/run")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

/// Every error is JSON, axum's own refusals included: another method on a `GET` endpoint, and a
/// path segment that is not UTF-8 once percent-decoded (no plugin or function is named so).
#[tokio::test]
async fn refusals_before_the_handlers_are_json_errors_too() {
    let (server, _dir) = server_with(&["hello"]).await;
    for path in ["/healthz", "/readyz", "/plugins", "/plugins/hello", "/plugins/hello/versions", "/metrics"] {
        let response = server.client.delete(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405, "{path}");
        assert_eq!(response.headers()["allow"], "GET,HEAD", "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{path}");
    }
    for (method, path) in [
        (reqwest::Method::GET, "/plugins/%FF"),
        (reqwest::Method::GET, "/plugins/%FF/versions"),
        (reqwest::Method::POST, "/plugins/%FF/functions/upper"),
        (reqwest::Method::POST, "/plugins/hello/functions/%C3%28"),
    ] {
        let response = server.client.request(method, server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not UTF-8"), "{path}: {body}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_wrong_content_types_415() {
    let (server, _dir) = server_with(&["hello"]).await;
    let huge = format!(r#"{{"plugin": "hello", "input": 1, "pad": "{}"}}"#, "x".repeat(host::api::MAX_BODY_BYTES));
    let (status, body) = server.run_raw(&huge).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("body_too_large")));

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
    let (server, _dir) = app_with(&["hello", "abi"]);
    let server = Arc::new(server);
    let requests = (0..200).map(|i| {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let (plugin, expected) = if i % 2 == 0 { ("hello", 2 * i + 1) } else { ("abi", i * i) };
            let (status, body) = server.run(plugin, i).await;
            assert_eq!((status, body), (200, json!({ "output": expected })), "{plugin}({i})");
        })
    });
    for request in requests.collect::<Vec<_>>() {
        request.await.unwrap();
    }
}

#[tokio::test]
async fn the_seeds_failure_cases_answer_clearly() {
    let (server, dir) = app_with(&["hello"]);
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(format!("{name}.wasm")), bytes).unwrap();
    write("uninitialized", &wat_plugin("i32.const 0", "i32.const -1", "i32.const 0"));
    write("double-init", &wat_plugin("i32.const -2", "local.get $input", "i32.const 0"));
    write("no-exports", &crate::support::wat(r#"(module (@custom "wasm_plugin_abi" "\01\00\00\00"))"#));
    write("invalid", b"this is not wasm");

    let cases = [
        ("missing", 404, "plugin_not_found", "no such plugin"),
        ("invalid", 500, "abi_violation", "malformed"),
        ("uninitialized", 500, "plugin_error", "not initialized (-1)"),
        ("double-init", 500, "plugin_error", "already initialized (-2)"),
        ("no-exports", 500, "abi_violation", "init"),
    ];
    for (plugin, status, code, message) in cases {
        let (got_status, body) = server.run(plugin, 1).await;
        assert_eq!((got_status, body["error"]["code"].as_str()), (status, Some(code)), "{plugin}: {body}");
        let got_message = body["error"]["message"].as_str().unwrap();
        assert!(got_message.contains(message), "{plugin}: {got_message:?} should mention {message:?}");
    }
}

#[tokio::test]
async fn path_traversal_in_any_spelling_is_refused_before_the_filesystem() {
    let (server, dir) = server_with(&["hello"]).await;
    // A real plugin outside the plugin directory, where traversal would lead.
    std::fs::write(dir.path().parent().unwrap().join("outside.wasm"), crate::support::plugin_bytes("hello")).ok();
    let spellings = [
        "../outside",
        "..",
        "../../etc/passwd",
        "/etc/passwd",
        "hello/../hello",
        "..\\outside",
        "%2e%2e%2foutside",
        "..%2foutside",
        "%2e%2e/outside",
        "....//outside",
        "./hello",
        "hello\u{0}",
        "hello\n",
        "hello.wasm",
        "~/hello",
        "hello/",
        "C:\\hello",
        "\u{202e}olleh",
    ];
    for name in spellings {
        let (status, body) = server.run_raw(&json!({ "plugin": name, "input": 1 }).to_string()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_plugin_name")), "{name:?}: {body}");
        assert!(!body.to_string().contains(name.trim()) || name.trim().is_empty(), "{name:?} echoed: {body}");
    }
    let response = server.client.get(server.url("/plugins/..%2Foutside")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn things_named_like_plugins_that_are_not_plugin_files_are_not_found() {
    let (server, dir) = server_with(&["hello"]).await;
    let outside = tempfile::TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.wasm"), crate::support::plugin_bytes("hello")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.wasm"), dir.path().join("escape.wasm")).unwrap();
    std::fs::create_dir(dir.path().join("folder.wasm")).unwrap();
    let made_fifo = std::process::Command::new("mkfifo").arg(dir.path().join("fifo.wasm")).status().unwrap();
    assert!(made_fifo.success(), "mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("socket.wasm")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("loop.wasm"), dir.path().join("loop.wasm")).unwrap();
    // A symlink that stays inside the directory is fine.
    std::os::unix::fs::symlink(dir.path().join("hello.wasm"), dir.path().join("alias.wasm")).unwrap();

    // The same answer from every endpoint that names the plugin.
    for name in ["escape", "folder", "fifo", "socket", "loop"] {
        let started = std::time::Instant::now();
        let (status, body) = server.run(name, 1).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("plugin_not_found")), "{name}: {body}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{name} took {:?}", started.elapsed());
        let response = server.client.get(server.url(&format!("/plugins/{name}"))).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "GET /plugins/{name}");
    }
    assert_eq!(server.run("alias", 21).await, (200, json!({ "output": 43 })));
}

#[tokio::test]
async fn a_full_server_sheds_load_with_503_and_retry_after() {
    let dir = plugin_dir(&[]);
    std::fs::write(dir.path().join("slow.wasm"), wat_plugin("i32.const 0", "(loop br 0) i32.const 0", "i32.const 0"))
        .unwrap();
    std::fs::write(dir.path().join("quick.wasm"), crate::support::plugin_bytes("hello")).unwrap();
    let mut config = runtime_config(ExecutionMode::Aot);
    config.limits.call_timeout = std::time::Duration::from_millis(500);
    let server = Arc::new(TestServer::start(app_state(local_store(dir.path()), config, 1)).await);

    let busy = tokio::spawn({
        let server = Arc::clone(&server);
        async move { server.run("slow", 1).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let response =
        server.client.post(server.url("/run")).json(&json!({ "plugin": "quick", "input": 1 })).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    // Probes have a budget of their own: a full server is still ready, and says so at once.
    let started = std::time::Instant::now();
    let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "a flood of calls must not make the replica unready");
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(ready["file_descriptors"]["open"].as_u64().unwrap() > 0, "{ready}");
    assert!(started.elapsed() < std::time::Duration::from_millis(400));

    // The slow call hits its deadline: 504.
    let (status, body) = busy.await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("plugin_timeout")));
    // And the server serves again.
    assert_eq!(server.run("quick", 21).await, (200, json!({ "output": 43 })));
}

#[tokio::test]
async fn hot_swap_under_http_load_never_fails_a_request() {
    let (server, dir) = app_with(&["hello"]);
    let server = Arc::new(server);
    let versions = [crate::support::plugin_bytes("hello"), crate::support::plugin_bytes("simple")];
    let swapper = {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            for round in 0..30 {
                crate::support::replace_atomically(&dir, "hello", &versions[round % 2]);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                for _ in 0..40 {
                    let (status, body) = server.run("hello", 5).await;
                    assert_eq!(status, 200, "{body}");
                    assert!(body == json!({"output": 11}) || body == json!({"output": 6}), "{body}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    swapper.join().unwrap();
}

#[tokio::test]
async fn operations_endpoints_describe_the_service() {
    let (server, dir) = server_with(&["hello", "abi"]).await;
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(server.run("hello", 21).await.0, 200);
    assert_eq!(server.run("broken", 21).await.0, 500);
    assert_eq!(server.run("nope", 21).await.0, 404);

    let get = |path: &str| server.client.get(server.url(path)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!((health.status().as_u16(), health.text().await.unwrap()), (200, "ok".to_string()));

    let ready: serde_json::Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["plugins"], 3);
    assert_eq!(ready["unloadable"], json!(["broken"]));

    let plugins: serde_json::Value = get("/plugins").await.unwrap().json().await.unwrap();
    // Size and hash of the compiled examples depend on the clang release; hello's hash is
    // checked against the file below.
    insta::assert_json_snapshot!("plugins_listing", plugins, {
        "[].modified_unix" => "[mtime]",
        "[].sha256" => "[sha256]",
        "[].size" => "[size]",
    });

    let one = get("/plugins/hello").await.unwrap();
    assert_eq!(one.status().as_u16(), 200);
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(one["loaded"], true);
    assert_eq!(one["sha256"], crate::support::sha256_hex(&crate::support::plugin_bytes("hello")));
    assert_eq!(get("/plugins/nope").await.unwrap().status().as_u16(), 404);

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for line in [
        r#"plugin_host_requests_total{plugin="hello",outcome="ok",client="-"} 1"#,
        r#"plugin_host_requests_total{plugin="broken",outcome="abi_violation",client="-"} 1"#,
        r#"plugin_host_requests_total{plugin="",outcome="plugin_not_found",client="-"} 1"#,
        r#"plugin_host_request_duration_seconds_count{plugin="hello"} 1"#,
        "plugin_host_instantiation_duration_seconds_count 1",
        r#"plugin_host_plugin_cache_total{result="miss"}"#,
        "plugin_host_requests_in_flight 0",
    ] {
        assert!(metrics.contains(line), "metrics lack {line:?}:\n{metrics}");
    }
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let (server, _dir) = server_with(&["hello"]).await;
    let response =
        server.client.post(server.url("/run")).json(&json!({"plugin": "hello", "input": 1})).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let response = server
        .client
        .post(server.url("/run"))
        .header("x-request-id", "caller-chosen-42")
        .json(&json!({"plugin": "hello", "input": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "caller-chosen-42");

    // Ids that would make logs and echoes a vehicle for the caller are replaced.
    for unusable in ["x".repeat(65), "<script>alert(1)</script>".to_owned(), "two words".to_owned()] {
        let response = server
            .client
            .post(server.url("/run"))
            .header("x-request-id", &unusable)
            .json(&json!({"plugin": "hello", "input": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{unusable:?} was replaced by a fresh id, not {id:?}");
    }
}

#[tokio::test]
async fn compressed_bodies_are_refused_not_misread() {
    let (server, _dir) = server_with(&["hello"]).await;
    let post = |encoding: &'static str| {
        server
            .client
            .post(server.url("/run"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(r#"{"plugin": "hello", "input": 21}"#)
            .send()
    };
    let response = post("gzip").await.unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Content-Encoding"), "{body}");
    assert_eq!(post("identity").await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn error_bodies_are_stable() {
    let (server, _dir) = app_with(&["hello", "abi"]);
    let bodies = [
        server.run_raw("{").await,
        server.run_raw(r#"{"plugin": "hello", "input": 1.5}"#).await,
        server.run_raw(r#"{"plugin": "../etc/passwd", "input": 1}"#).await,
        server.run("missing", 1).await,
        server.run("abi", -1).await,
        server.run("abi", 50000).await,
    ];
    let bodies: Vec<serde_json::Value> =
        bodies.into_iter().map(|(status, body)| json!({ "status": status, "body": body })).collect();
    insta::assert_json_snapshot!("error_bodies", bodies);
}

/// A file the store holds but will not give (here: over the size limit) is listed with the
/// reason, and counts as unloadable for /readyz; an operator looking for it finds it.
#[tokio::test]
async fn oversized_plugins_are_listed_with_the_reason() {
    let dir = plugin_dir(&["hello"]);
    std::fs::write(dir.path().join("big.wasm"), vec![0u8; 4096]).unwrap();
    let hello_size = std::fs::metadata(dir.path().join("hello.wasm")).unwrap().len();
    let store = Arc::new(plugin_host::store::LocalPluginStore::new(dir.path(), hello_size.max(1024)).unwrap());
    let server = TestServer::start(app_state(store, runtime_config(ExecutionMode::Aot), 16)).await;

    let listing: serde_json::Value =
        server.client.get(server.url("/plugins")).send().await.unwrap().json().await.unwrap();
    let names: Vec<_> = listing.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["big", "hello"]);
    let big = &listing[0];
    assert_eq!(
        (&big["size"], &big["sha256"], &big["abi"], &big["loaded"]),
        (&json!(4096), &json!(null), &json!(null), &json!(false))
    );
    assert!(big["last_error"].as_str().unwrap().contains("over the"), "{big}");

    let one: serde_json::Value =
        server.client.get(server.url("/plugins/big")).send().await.unwrap().json().await.unwrap();
    assert_eq!(&one, big);
    let ready: serde_json::Value = server.client.get(server.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["unloadable"], json!(["big"]));
    let (status, body) = server.run("big", 1).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("plugin_too_large")), "{body}");
}

/// An ABI v2 plugin (bytes in and out, functions by name) cannot be called with an integer:
/// the answer says so, instead of a missing `process` looking like a broken module.
#[tokio::test]
async fn an_integer_call_on_a_v2_plugin_says_what_the_plugin_is() {
    let (server, _dir) = server_with(&["text"]).await;
    let (status, body) = server.run("text", 1).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("wrong_abi_version")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("ABI v2"), "{body}");
    let listed: serde_json::Value =
        server.client.get(server.url("/plugins/text")).send().await.unwrap().json().await.unwrap();
    assert_eq!((&listed["abi"]["version"], &listed["abi"]["compliant"]), (&json!(2), &json!(true)), "{listed}");
}
