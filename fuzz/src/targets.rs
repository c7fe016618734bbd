//! The targets that need no state: the checker (on bytes and on plugin-shaped modules) and the
//! worker frame decoder.

use arbitrary::Unstructured;
use plugin_host::runner::worker::protocol::{Reply, Request, decode_frame, encode_frame, read_frame, write_frame};
use plugin_sdk::{AbiLimits, AbiViolation};

use crate::smith::plugin_shaped_module;

/// The checker on arbitrary bytes. It must not panic (a panic is the finding), and what it
/// says must hold together: a compliant module is one WebAssembly validates with the features
/// ABI v1 allows, and every report renders and serializes.
pub fn checker_bytes(data: &[u8]) {
    let report = plugin_sdk::check(data);
    if report.is_compliant() {
        let allowed = wasmparser::WasmFeatures::LIME1 | wasmparser::WasmFeatures::FLOATS;
        let valid = wasmparser::Validator::new_with_features(allowed).validate_all(data).map(drop);
        assert!(valid.is_ok(), "the checker accepted a module the validator refuses: {valid:?}");
    }
    let _ = report.render("input.wasm");
    serde_json::to_string(&report).expect("reports serialize");
    // The smallest limits reach the limit rules' branches on ordinary inputs.
    let tiny =
        AbiLimits { max_initial_memory_pages: 0, max_table_entries: 0, max_function_count: 1, max_buffer_capacity: 1 };
    let _ = plugin_sdk::check_with(data, &tiny);
}

/// The checker on a plugin-shaped module: wasm-smith only builds valid modules, so `malformed`
/// would be the checker disagreeing with WebAssembly itself.
pub fn checker_smith(data: &[u8]) {
    let Ok(wasm) = plugin_shaped_module(&mut Unstructured::new(data)) else {
        return;
    };
    let report = plugin_sdk::check(&wasm);
    let malformed = report.violations.iter().find(|v| matches!(v.kind, AbiViolation::Malformed { .. }));
    assert!(malformed.is_none(), "a valid module was reported malformed: {}", report.render("smith.wasm"));
    let _ = report.render("smith.wasm");
}

/// The worker protocol's decoder on arbitrary bytes, read as a server would (a `Reply`) and as
/// a worker would (a `Request`): no panic, no allocation the input does not pay for, and a
/// frame that decodes encodes back to the same message.
pub fn worker_frame(data: &[u8]) {
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
        let mut reader = data;
        // A stream may hold several frames; read until the decoder stops.
        while let Ok((message, blob)) = read_frame::<T>(&mut reader) {
            let mut encoded = Vec::new();
            write_frame(&mut encoded, &message, &blob).expect("writing to a Vec cannot fail");
            let (again, blob_again) = read_frame::<T>(&mut &encoded[..]).expect("an encoded frame decodes");
            assert_eq!(
                serde_json::to_value(&message).expect("messages serialize"),
                serde_json::to_value(&again).expect("messages serialize"),
            );
            assert_eq!(blob, blob_again);
        }
    }
    /// The same bytes as one frame out of the shared slot: it decodes only if the stream
    /// reader would take exactly those bytes as its first frame.
    fn whole<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
        if let Ok((message, blob)) = decode_frame::<T>(data) {
            let encoded = encode_frame(&message, &blob).expect("messages serialize");
            let (again, _) = decode_frame::<T>(&encoded).expect("an encoded frame decodes");
            assert_eq!(
                serde_json::to_value(&message).expect("messages serialize"),
                serde_json::to_value(&again).expect("messages serialize"),
            );
            let mut reader = data;
            read_frame::<T>(&mut reader).expect("the stream reader takes the same frame");
            assert!(reader.is_empty(), "a slot's frame is the whole of its bytes");
        }
    }
    round_trip::<Request>(data);
    round_trip::<Reply>(data);
    whole::<Request>(data);
    whole::<Reply>(data);
}
