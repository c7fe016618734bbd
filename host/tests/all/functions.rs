//! ABI v2 over HTTP: functions called by name with bytes (`POST /run` and the raw
//! `POST /plugins/{name}/functions/{function}`), streams, their limits, hostile v2 plugins, and
//! the fresh-state promise for bytes. Every test runs in both isolation modes.

use std::time::Duration;

use base64::Engine as _;
use host::api::StreamLimits;
use plugin_host::runtime::ExecutionMode;
use serde_json::{Value, json};

use crate::support::{
    TestServer, fault_bytes, local_store, plugin_dir, runtime_config, settings, sha256_hex, state_with, workers,
};

#[derive(Debug, Clone, Copy)]
enum Isolation {
    InProcess,
    Workers,
}

const ISOLATIONS: [Isolation; 2] = [Isolation::InProcess, Isolation::Workers];

struct Server {
    server: TestServer,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

/// A server over the v2 examples, `hello`, and the v2 fault plugins (`v2-hostile`,
/// `v2-lying-buffers`), with the ABI check on.
async fn server(isolation: Isolation, timeout: Duration, limits: StreamLimits) -> Server {
    let dir = plugin_dir(&["hello", "text", "redact", "sha256", "csvsum"]);
    for fault in ["v2-hostile", "v2-lying-buffers"] {
        std::fs::write(dir.path().join(format!("{fault}.wasm")), fault_bytes(fault)).unwrap();
    }
    let mut runtime = runtime_config(ExecutionMode::Aot);
    runtime.limits.call_timeout = timeout;
    let isolation = match isolation {
        Isolation::InProcess => plugin_host::Isolation::InProcess,
        Isolation::Workers => plugin_host::Isolation::Workers(workers(2)),
    };
    let mut state = state_with(local_store(dir.path()), settings(&runtime, isolation, 64));
    state.stream_limits = limits;
    Server { server: TestServer::start(state).await, _dir: dir }
}

async fn default_server(isolation: Isolation) -> Server {
    server(isolation, Duration::from_secs(2), StreamLimits::default()).await
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl TestServer {
    async fn call_json(&self, request: Value) -> (u16, Value) {
        self.run_raw(&request.to_string()).await
    }

    /// The raw endpoint: status, content type and body.
    async fn call_raw(&self, plugin: &str, function: &str, body: impl Into<reqwest::Body>) -> (u16, String, Vec<u8>) {
        self.call_raw_typed(plugin, function, "application/octet-stream", body).await
    }

    async fn call_raw_typed(
        &self,
        plugin: &str,
        function: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String, Vec<u8>) {
        let response = self
            .client
            .post(self.url(&format!("/plugins/{plugin}/functions/{function}")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, content_type, response.bytes().await.expect("whole body").to_vec())
    }

    async fn hello_still_answers(&self, after: &str) {
        assert_eq!(self.run("hello", 21).await, (200, json!({ "output": 43 })), "after {after}");
        let (status, body) = self.call_json(json!({"plugin": "text", "function": "upper", "input": "ok"})).await;
        assert_eq!((status, body), (200, json!({"output": "OK"})), "after {after}");
    }
}

/// A request body sent in the given pieces, with a pause before each, as a slow client would.
fn body_in_pieces(pieces: Vec<Vec<u8>>, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(pieces.into_iter(), move |mut rest| async move {
        let piece = rest.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(piece), rest))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn functions_are_called_by_name_with_text_or_base64() {
    for isolation in ISOLATIONS {
        let server = default_server(isolation).await;
        let cases = [
            (json!({"plugin": "text", "function": "upper", "input": "hello"}), json!({"output": "HELLO"})),
            (json!({"plugin": "text", "function": "lower", "input": "HeLLo"}), json!({"output": "hello"})),
            (json!({"plugin": "text", "function": "reverse", "input": "añb"}), json!({"output": "bña"})),
            (json!({"plugin": "text", "function": "word_count", "input": "one two  three"}), json!({"output": "3"})),
            (
                json!({"plugin": "redact", "function": "redact", "input": "bob@example.com 4111 1111 1111 1111"}),
                json!({"output": "*************** **** **** **** 1111"}),
            ),
            (
                json!({"plugin": "sha256", "function": "sha256", "input": "abc"}),
                json!({"output": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}),
            ),
            // A streaming function called with `POST /run` runs as one whole stream.
            (
                json!({"plugin": "sha256", "function": "sha256sum", "input": "abc"}),
                json!({"output": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}),
            ),
            (
                json!({"plugin": "csvsum", "function": "aggregate", "input": "b,5\na,1\nb,-2\n"}),
                json!({"output": "key,count,sum,min,max\na,1,1,1,1\nb,2,3,-2,5\n"}),
            ),
            // Binary in, binary out; output that is not UTF-8 comes back as base64.
            (
                json!({"plugin": "v2-hostile", "function": "echo", "input_base64": b64(&[0, 255, 1])}),
                json!({"output_base64": b64(&[0, 255, 1])}),
            ),
            // Base64 out when asked, even for text.
            (
                json!({"plugin": "text", "function": "upper", "input": "hi", "output_base64": true}),
                json!({"output_base64": b64(b"HI")}),
            ),
            (json!({"plugin": "text", "function": "upper", "input": ""}), json!({"output": ""})),
        ];
        for (request, expected) in cases {
            assert_eq!(server.call_json(request.clone()).await, (200, expected), "{isolation:?}: {request}");
        }
        // A stream's input longer than its capacity is fed in chunks through `POST /run` too.
        let long = "x".repeat(200_000);
        let (status, body) =
            server.call_json(json!({"plugin": "sha256", "function": "sha256sum", "input": long})).await;
        assert_eq!((status, body["output"].as_str()), (200, Some(sha256_hex(long.as_bytes()).as_str())));
    }
}

/// A v2 plugin in WAT, `bytes`: `fn_echo` copies its input, `fn_flip` flips the top bit of
/// every byte, so text in gives bytes that are not UTF-8 out (`a` becomes `0xe1`), and back.
const BYTES_PLUGIN: &str = include_str!("bytes.wat");

/// The answer's encoding follows the input (base64 in, base64 out; text in, text out) unless
/// the request says `"output_base64"`; text is only ever given for valid UTF-8.
#[tokio::test]
async fn the_output_is_encoded_like_the_input_unless_the_request_chooses() {
    let server = default_server(Isolation::InProcess).await;
    std::fs::write(server._dir.path().join("bytes.wasm"), wat::parse_str(BYTES_PLUGIN).unwrap()).unwrap();
    let text = |s: &str| json!({ "output": s });
    let base64 = |b: &[u8]| json!({ "output_base64": b64(b) });
    let flipped = [0xe1u8, 0xe2]; // "ab" with the top bit set: not UTF-8
    // (input field, input, function, "output_base64", answer)
    let cases = [
        // Text in: text out when the output is UTF-8, base64 when it cannot be text.
        ("input", json!("ab"), "echo", None, text("ab")),
        ("input", json!("ab"), "flip", None, base64(&flipped)),
        ("input", json!("ab"), "echo", Some(false), text("ab")),
        ("input", json!("ab"), "flip", Some(false), base64(&flipped)),
        ("input", json!("ab"), "echo", Some(true), base64(b"ab")),
        ("input", json!("ab"), "flip", Some(true), base64(&flipped)),
        // Base64 in: base64 out, whether or not the bytes happen to be UTF-8 ...
        ("input_base64", json!(b64(b"ab")), "echo", None, base64(b"ab")),
        ("input_base64", json!(b64(&flipped)), "flip", None, base64(b"ab")),
        ("input_base64", json!(b64(&flipped)), "echo", None, base64(&flipped)),
        ("input_base64", json!(b64(b"ab")), "echo", Some(true), base64(b"ab")),
        // ... unless text is asked for: then text when the bytes are UTF-8 (the old answer).
        ("input_base64", json!(b64(&flipped)), "flip", Some(false), text("ab")),
        ("input_base64", json!(b64(&flipped)), "echo", Some(false), base64(&flipped)),
        // Nothing in, nothing out, in the input's form.
        ("input_base64", json!(""), "echo", None, base64(b"")),
        ("input", json!(""), "echo", None, text("")),
    ];
    for (field, input, function, output_base64, expected) in cases {
        let mut request = json!({ "plugin": "bytes", "function": function, field: input });
        if let Some(choice) = output_base64 {
            request["output_base64"] = json!(choice);
        }
        assert_eq!(server.call_json(request.clone()).await, (200, expected), "{request}");
    }
    // An ABI v1 answer is an integer: `"output_base64": false` changes nothing, `true` is refused.
    let v1 = json!({ "plugin": "hello", "input": 21, "output_base64": false });
    assert_eq!(server.call_json(v1).await, (200, json!({ "output": 43 })));
    let (status, body) = server.call_json(json!({ "plugin": "hello", "input": 21, "output_base64": true })).await;
    assert_eq!((status, code(&body)), (400, Some("invalid_request")), "{body}");
    let (status, body) = server
        .call_json(json!({ "plugin": "bytes", "function": "echo", "input": "x",
        "output_base64": "yes" }))
        .await;
    assert_eq!((status, code(&body)), (400, Some("invalid_request")), "{body}");
}

#[tokio::test]
async fn wrong_calls_get_clear_errors() {
    for isolation in ISOLATIONS {
        let server = default_server(isolation).await;
        // (request, status, code, words the message must contain)
        let cases = [
            (json!({"plugin": "text", "input": 21}), 400, "wrong_abi_version", "name one of its functions"),
            (json!({"plugin": "hello", "function": "upper", "input": "x"}), 400, "wrong_abi_version", "ABI v1"),
            (json!({"plugin": "text", "function": "shout", "input": "x"}), 404, "function_not_found", "lower, reverse"),
            (
                json!({"plugin": "text", "function": "upper", "input": "x".repeat(65537)}),
                413,
                "input_too_large",
                "65536-byte input buffer",
            ),
            // `reverse` refuses invalid UTF-8 with -3.
            (
                json!({"plugin": "text", "function": "reverse", "input_base64": b64(&[0xff])}),
                422,
                "invalid_argument",
                "-3",
            ),
            (json!({"plugin": "text", "function": "upper", "input": 5}), 400, "invalid_request", "exactly one"),
            (
                json!({"plugin": "text", "function": "upper", "input": "a", "input_base64": "YQ=="}),
                400,
                "invalid_request",
                "exactly one",
            ),
            (json!({"plugin": "text", "function": "upper", "input_base64": "%%%"}), 400, "invalid_request", "base64"),
            (json!({"plugin": "hello", "input": "21"}), 400, "invalid_request", "integer"),
            (json!({"plugin": "hello", "input": 21, "output_base64": true}), 400, "invalid_request", "integer"),
            (json!({"plugin": "v2-lying-buffers", "function": "echo", "input": "x"}), 500, "abi_violation", "buffer"),
        ];
        for (request, status, expected_code, words) in cases {
            let (got, body) = server.call_json(request.clone()).await;
            assert_eq!((got, code(&body)), (status, Some(expected_code)), "{isolation:?}: {request}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{isolation:?}: {request}: {message:?} lacks {words:?}");
        }
        // The raw endpoint answers the same way.
        let (status, _, body) = server.call_raw("text", "shout", "x").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (404, Some("function_not_found")), "{body}");
        let (status, _, body) = server.call_raw("hello", "upper", "x").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (400, Some("wrong_abi_version")), "{body}");
        let (status, _, body) = server.call_raw("text", "Upper", "x").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (400, Some("invalid_request")), "{body}");
        let (status, _, body) = server.call_raw("text", "upper", vec![b'a'; 65537]).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (413, Some("input_too_large")), "{body}");
        let response = server.client.get(server.url("/plugins/text/functions/upper")).send().await.unwrap();
        assert_eq!((response.status().as_u16(), response.headers()["allow"].to_str().unwrap()), (405, "POST"));
        server.hello_still_answers("wrong calls").await;
    }
}

#[tokio::test]
async fn the_raw_endpoint_takes_and_gives_bytes_and_streams_bodies_of_any_length() {
    for isolation in ISOLATIONS {
        let server = default_server(isolation).await;
        let (status, content_type, body) = server.call_raw("text", "reverse", "hello world").await;
        assert_eq!(
            (status, content_type.as_str(), body.as_slice()),
            (200, "application/octet-stream", &b"dlrow olleh"[..])
        );
        let (status, _, body) = server.call_raw("v2-hostile", "echo", vec![0u8, 255, 7]).await;
        assert_eq!((status, body), (200, vec![0, 255, 7]));

        // 3 MB in irregular pieces: the plugin sees 64 KiB chunks; the digest is the whole body's.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let pieces = data.chunks(100_003).map(<[u8]>::to_vec).collect();
        let (status, _, body) = server.call_raw("sha256", "sha256sum", body_in_pieces(pieces, Duration::ZERO)).await;
        assert_eq!((status, String::from_utf8(body).unwrap()), (200, sha256_hex(&data)), "{isolation:?}");
        let (status, _, body) = server.call_raw("sha256", "sha256sum", Vec::new()).await;
        assert_eq!((status, String::from_utf8(body).unwrap()), (200, sha256_hex(b"")));

        // CSV lines split anywhere between chunks.
        let csv: String = (0..20_000).map(|i| format!("k{},{}\n", i % 7, i)).collect();
        let (status, _, body) = server.call_raw("csvsum", "aggregate", csv.clone()).await;
        let (_, expected) =
            server.call_json(json!({"plugin": "csvsum", "function": "totals", "input": "k0,0\n"})).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let totals = String::from_utf8(body).unwrap();
        assert!(expected["output"].as_str().unwrap().starts_with("key,count,sum,min,max\n"));
        assert!(totals.starts_with("key,count,sum,min,max\nk0,2858,"), "{totals}");
        assert_eq!(totals.lines().count(), 8, "{totals}");

        // The plugin's description lists its functions and buffers.
        let described: Value =
            server.client.get(server.url("/plugins/sha256")).send().await.unwrap().json().await.unwrap();
        assert_eq!(described["abi"]["version"], 2);
        assert_eq!(described["abi"]["v2"]["input"]["capacity"], 65536);
        assert_eq!(described["abi"]["v2"]["output"]["capacity"], 64);
        assert_eq!(
            described["abi"]["v2"]["functions"],
            json!([{"name": "sha256", "kind": "call"}, {"name": "sha256sum", "kind": "stream"}])
        );
        let described: Value =
            server.client.get(server.url("/plugins/hello")).send().await.unwrap().json().await.unwrap();
        assert!(described["abi"].get("v2").is_none(), "{described}");
    }
}

#[tokio::test]
async fn ndjson_streams_are_fed_whole_lines_only() {
    for isolation in ISOLATIONS {
        let server = default_server(isolation).await;
        // `lines` refuses any chunk that ends inside a record. Lines of varied lengths, sent in
        // pieces that cut them anywhere.
        let ndjson: String = (0..3000).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97))).collect();
        let pieces = ndjson.as_bytes().chunks(777).map(<[u8]>::to_vec).collect();
        let (status, _, body) = server
            .call_raw_typed("v2-hostile", "lines", "application/x-ndjson", body_in_pieces(pieces, Duration::ZERO))
            .await;
        assert_eq!(status, 200, "{isolation:?}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        assert_eq!(body, ndjson.as_bytes(), "{isolation:?}: every record comes back, in order");
        // A last line without a newline is fed whole too... and refused by this plugin, which
        // wants newlines; the point is that it was not cut.
        let (status, _, body) =
            server.call_raw_typed("v2-hostile", "lines", "application/x-ndjson; charset=utf-8", "{}\n{}\n").await;
        assert_eq!((status, body), (200, b"{}\n{}\n".to_vec()));
        // Without the NDJSON type, chunks are cut at the input capacity, inside records.
        let (status, _, body) = server.call_raw("v2-hostile", "lines", ndjson.clone()).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (422, Some("invalid_argument")), "{isolation:?}: {body}");
        // A record longer than the input capacity cannot be fed whole.
        let long_line = format!("{}\n", "y".repeat(5000));
        let (status, _, body) = server.call_raw_typed("v2-hostile", "lines", "application/x-ndjson", long_line).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (413, Some("input_too_large")), "{isolation:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("NDJSON line") && message.contains("4096"), "{message}");
    }
}

#[tokio::test]
async fn streams_that_break_a_limit_end_with_an_error_the_client_sees() {
    for isolation in ISOLATIONS {
        let limits = StreamLimits {
            max_bytes: 100_000,
            max_duration: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(500),
            ..StreamLimits::default()
        };
        let server = server(isolation, Duration::from_secs(2), limits).await;
        // Too large, before any output: an ordinary JSON error.
        let (status, _, body) = server.call_raw("sha256", "sha256sum", vec![7u8; 150_000]).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (413, Some("stream_too_large")), "{isolation:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("100000-byte limit"), "{body}");
        // Too large after output began: the status is already 200, so the body is cut off, and
        // the client sees an incomplete response rather than a short answer it might trust.
        let lines = "z".repeat(99).into_bytes().into_iter().chain([b'\n']).cycle().take(150_000).collect::<Vec<_>>();
        let pieces = lines.chunks(10_000).map(<[u8]>::to_vec).collect();
        let response = server
            .client
            .post(server.url("/plugins/v2-hostile/functions/lines"))
            .header("content-type", "application/x-ndjson")
            .body(body_in_pieces(pieces, Duration::from_millis(5)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{isolation:?}");
        let read = response.bytes().await;
        assert!(
            read.is_err(),
            "{isolation:?}: a cut-off stream must not read as complete ({:?} bytes)",
            read.map(|b| b.len())
        );
        // A client that stops sending in mid-stream.
        let pieces = vec![vec![1u8; 1000], vec![2u8; 1000]];
        let (status, _, body) =
            server.call_raw("sha256", "sha256sum", body_in_pieces(pieces, Duration::from_millis(1500))).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (408, Some("stream_timeout")), "{isolation:?}: {body}");
        server.hello_still_answers("limits").await;
    }
}

#[tokio::test]
async fn hostile_v2_plugins_get_clear_errors_and_the_server_keeps_serving() {
    for isolation in ISOLATIONS {
        let server = server(isolation, Duration::from_millis(300), StreamLimits::default()).await;
        // (function, input bytes, status, code, words)
        let cases: &[(&str, usize, u16, &str, &str)] = &[
            ("overflow", 1, 500, "buffer_fault", "4097 bytes of output, over its 4096-byte output buffer"),
            ("huge", 1, 500, "buffer_fault", "2147483647 bytes"),
            ("trap", 8192, 500, "plugin_trapped", "unreachable"),
            ("spin", 10, 504, "plugin_timeout", "deadline"),
        ];
        for &(function, size, status, expected_code, words) in cases {
            let request = json!({"plugin": "v2-hostile", "function": function, "input": "a".repeat(size)});
            let (got, body) = server.call_json(request).await;
            assert_eq!((got, code(&body)), (status, Some(expected_code)), "{isolation:?} {function}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{isolation:?} {function}: {message:?} lacks {words:?}");
            server.hello_still_answers(function).await;
        }
        // A trap in mid-stream, after output went out: the response is cut off, whether the
        // trap comes well after the first output went out or before the server wrote anything.
        for pause in [Duration::from_millis(20), Duration::ZERO] {
            let response = server
                .client
                .post(server.url("/plugins/v2-hostile/functions/trap"))
                .body(body_in_pieces(vec![vec![b'a'; 4096], vec![b'b'; 4096]], pause))
                .send()
                .await
                .unwrap_or_else(|error| panic!("{isolation:?} {pause:?}: no answer: {error:?}"));
            assert_eq!(response.status().as_u16(), 200);
            assert!(response.bytes().await.is_err(), "{isolation:?}: the trap must reach the client");
        }
        // An infinite loop in `feed`, before any output: 504.
        let (status, _, body) = server.call_raw("v2-hostile", "spin", "go").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, code(&body)), (504, Some("plugin_timeout")), "{isolation:?}: {body}");
        server.hello_still_answers("the raw hostile streams").await;
    }
}

#[tokio::test]
async fn no_byte_of_one_call_is_visible_to_the_next() {
    for isolation in ISOLATIONS {
        let server = default_server(isolation).await;
        let secret = "SECRET-".repeat(500);
        // Many rounds, so that reused instances (in-process and inside workers) are exercised.
        for round in 0..12 {
            let (status, body) =
                server.call_json(json!({"plugin": "v2-hostile", "function": "echo", "input": secret})).await;
            assert_eq!((status, body["output"].as_str()), (200, Some(secret.as_str())));
            for function in ["peek", "stale"] {
                let (status, _, body) = server.call_raw("v2-hostile", function, "").await;
                assert_eq!((status, body.len()), (200, 4096), "{isolation:?} {function}");
                assert!(
                    body.iter().all(|&b| b == 0),
                    "{isolation:?} round {round}: `{function}` saw an earlier call's bytes"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_worker_holds_at_most_its_share_of_streams() {
    let server = default_server(Isolation::Workers).await;
    // Two workers: one may stream, the other stays free for calls.
    let slow = body_in_pieces(vec![vec![1u8; 100]; 20], Duration::from_millis(100));
    let client = server.client.clone();
    let url = server.url("/plugins/sha256/functions/sha256sum");
    // Compiled first, so that the stream below opens at once.
    assert_eq!(server.call_raw("sha256", "sha256sum", "warm").await.0, 200);
    let first = tokio::spawn(async move { client.post(url).body(slow).send().await.unwrap().status().as_u16() });
    // Wait until the stream holds its worker.
    for _ in 0..100 {
        let ready: Value = server.client.get(server.url("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready["workers"]["busy"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, body) = server.call_raw("sha256", "sha256sum", "x").await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, code(&body)), (503, Some("overloaded")), "{body}");
    server.hello_still_answers("a second stream was refused").await;
    assert_eq!(first.await.unwrap(), 200);
    let (status, _, _) = server.call_raw("sha256", "sha256sum", "x").await;
    assert_eq!(status, 200, "the stream's place is free again");
}
