//! Plugins written in other languages than C answer exactly like their C originals: `hello`,
//! `text` and `sha256` in Rust (`plugins/*_rust/`), `hello` and `text` in Zig and in AssemblyScript,
//! built by `cargo xtask build-plugins` with the language SDKs in `plugin-sdk/`, served next to
//! the C ones, in both isolation modes.

use plugin_host::runtime::ExecutionMode;
use serde_json::{Value, json};

use crate::support::{TestServer, local_store, plugin_dir, runtime_config, sha256_hex};

/// Each C example and its ports, by plugin name.
const PORTS: [(&str, &[&str]); 3] = [
    ("hello", &["hello_rust", "hello_zig", "hello_as"]),
    ("text", &["text_rust", "text_zig", "text_as"]),
    ("sha256", &["sha256_rust"]),
];

/// A server over every original and every port, with the ABI check on.
async fn server(workers: bool) -> (TestServer, tempfile::TempDir) {
    let names: Vec<&str> =
        PORTS.iter().flat_map(|(c, ports)| std::iter::once(*c).chain(ports.iter().copied())).collect();
    let dir = plugin_dir(&names);
    let runtime = runtime_config(ExecutionMode::Aot);
    let isolation = if workers {
        plugin_host::Isolation::Workers(crate::support::workers(2))
    } else {
        plugin_host::Isolation::InProcess
    };
    let settings = crate::support::settings(&runtime, isolation, 64);
    (TestServer::start(crate::support::state_with(local_store(dir.path()), settings)).await, dir)
}

/// `request` with its `plugin` replaced by `name`.
fn to(name: &str, request: &Value) -> Value {
    let mut request = request.clone();
    request["plugin"] = json!(name);
    request
}

async fn raw(server: &TestServer, plugin: &str, function: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = server
        .client
        .post(server.url(&format!("/plugins/{plugin}/functions/{function}")))
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn rust_ports_answer_exactly_like_the_c_plugins_in_both_isolation_modes() {
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let long = "x".repeat(200_000);
    // What the C plugins answer (checked here too, so a shared mistake cannot pass).
    let cases: Vec<(Value, u16, Value)> = vec![
        (json!({"plugin": "hello", "input": 21}), 200, json!({"output": 43})),
        (json!({"plugin": "hello", "input": 0}), 200, json!({"output": 1})),
        (json!({"plugin": "hello", "input": 1_073_741_823}), 200, json!({"output": 2_147_483_647})),
        (json!({"plugin": "hello", "input": 1_073_741_824}), 422, json!("invalid_argument")),
        (json!({"plugin": "hello", "input": -1}), 422, json!("invalid_argument")),
        (
            json!({"plugin": "text", "function": "upper", "input": "hello, World"}),
            200,
            json!({"output": "HELLO, WORLD"}),
        ),
        (
            json!({"plugin": "text", "function": "lower", "input": "Hello, WORLD"}),
            200,
            json!({"output": "hello, world"}),
        ),
        (json!({"plugin": "text", "function": "upper", "input": "añb"}), 200, json!({"output": "AñB"})),
        (json!({"plugin": "text", "function": "reverse", "input": "añb€𝄞"}), 200, json!({"output": "𝄞€bña"})),
        (json!({"plugin": "text", "function": "reverse", "input": ""}), 200, json!({"output": ""})),
        (json!({"plugin": "text", "function": "reverse", "input_base64": "gA=="}), 422, json!("invalid_argument")),
        // An over-long encoding of '/', and a surrogate: not UTF-8.
        (json!({"plugin": "text", "function": "reverse", "input_base64": "wK8="}), 422, json!("invalid_argument")),
        (json!({"plugin": "text", "function": "reverse", "input_base64": "7aCA"}), 422, json!("invalid_argument")),
        (
            json!({"plugin": "text", "function": "word_count", "input": "  one two\tthree\n"}),
            200,
            json!({"output": "3"}),
        ),
        (json!({"plugin": "text", "function": "word_count", "input": ""}), 200, json!({"output": "0"})),
        (json!({"plugin": "text", "function": "upper", "input": "x".repeat(65537)}), 413, json!("input_too_large")),
        (json!({"plugin": "text", "function": "shout", "input": "x"}), 404, json!("function_not_found")),
        (json!({"plugin": "sha256", "function": "sha256", "input": "abc"}), 200, json!({"output": abc})),
        (json!({"plugin": "sha256", "function": "sha256sum", "input": "abc"}), 200, json!({"output": abc})),
        (json!({"plugin": "sha256", "function": "sha256", "input": ""}), 200, json!({"output": sha256_hex(b"")})),
        (
            json!({"plugin": "sha256", "function": "sha256sum", "input": long}),
            200,
            json!({"output": sha256_hex(long.as_bytes())}),
        ),
    ];
    for workers in [false, true] {
        let (server, _dir) = server(workers).await;
        for (request, status, expected) in &cases {
            let (got_status, body) = server.run_raw(&request.to_string()).await;
            let got = if got_status == 200 { body.clone() } else { body["error"]["code"].clone() };
            assert_eq!((got_status, &got), (*status, expected), "workers: {workers}, C: {request}");
            let (c, ports) = PORTS.iter().find(|(c, _)| request["plugin"] == *c).unwrap();
            for port in *ports {
                let (port_status, port_body) = server.run_raw(&to(port, request).to_string()).await;
                assert_eq!(
                    (port_status, &port_body["output"]),
                    (got_status, &body["output"]),
                    "{port} vs {c}: {request}"
                );
                assert_eq!(port_body["error"]["code"], body["error"]["code"], "{port} vs {c}: {request}");
            }
        }
        // Every block boundary of SHA-256's padding, and a 3 MB stream in 64 KiB chunks.
        for length in [55, 56, 63, 64, 65, 119, 120, 65535, 65536] {
            let data: Vec<u8> = (0..length).map(|i| (i * 7 + 3) as u8).collect();
            for plugin in ["sha256", "sha256_rust"] {
                let (status, body) = raw(&server, plugin, "sha256", data.clone()).await;
                assert_eq!((status, String::from_utf8(body).unwrap()), (200, sha256_hex(&data)), "{plugin} {length}");
            }
        }
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for plugin in ["sha256", "sha256_rust"] {
            let (status, body) = raw(&server, plugin, "sha256sum", data.clone()).await;
            assert_eq!((status, String::from_utf8(body).unwrap()), (200, sha256_hex(&data)), "{plugin}");
        }
        // The same description: buffers and functions.
        for (c, ports) in PORTS {
            let describe = |name: String| {
                let client = server.client.clone();
                let url = server.url(&format!("/plugins/{name}"));
                async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
            };
            let original = describe(c.to_owned()).await;
            for port in ports {
                let described = describe((*port).to_owned()).await;
                assert_eq!(described["abi"]["compliant"], true, "{described}");
                assert_eq!(described["abi"]["warnings"], json!([]), "{described}");
                assert_eq!(described["abi"]["version"], original["abi"]["version"], "{port}");
                assert_eq!(described["abi"]["v2"]["functions"], original["abi"]["v2"]["functions"], "{port}");
                for buffer in ["input", "output"] {
                    assert_eq!(
                        described["abi"]["v2"][buffer]["capacity"], original["abi"]["v2"][buffer]["capacity"],
                        "{port} {buffer}"
                    );
                }
            }
        }
    }
}
