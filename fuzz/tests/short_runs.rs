//! Short, deterministic runs of every fuzz target, part of `cargo xtask test`: the committed
//! corpus (`fuzz/corpus/<target>/`, minimized from the long runs), the regression fixtures
//! (`fuzz/regressions/`), then a fixed number of inputs from a seeded generator. Seconds in
//! all; the long, coverage-guided runs are `cargo xtask fuzz`.

use std::path::{Path, PathBuf};

use fuzz::{Harmless, Outcome, RequestHarness, Target, seeded::SplitMix64};

/// The seed of every short run: fixed, so a failure reproduces anywhere.
const SEED: u64 = 0x5eed_0017;

/// Every file in `dir` (none if it does not exist), sorted so runs are repeatable.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `target` on its corpus and on `count` seeded inputs of up to `max_len` bytes; returns
/// how many inputs it ran.
fn short_run(target: Target, count: usize, max_len: usize, mut run: impl FnMut(&[u8])) -> usize {
    let corpus = files(&target.corpus_dir());
    for path in &corpus {
        run(&std::fs::read(path).unwrap());
    }
    let mut rng = SplitMix64::new(SEED ^ target.name().len() as u64);
    for _ in 0..count {
        run(&rng.bytes(max_len));
    }
    corpus.len() + count
}

#[test]
fn checker_on_arbitrary_bytes() {
    // Random bytes rarely get past the magic number, so half the inputs start with a module
    // header: the parser then meets random sections.
    let mut header = true;
    short_run(Target::CheckerBytes, 4000, 512, |data| {
        header = !header;
        if header {
            fuzz::checker_bytes(&[b"\0asm\x01\0\0\0", data].concat());
        } else {
            fuzz::checker_bytes(data);
        }
    });
}

#[test]
fn checker_on_plugin_shaped_modules() {
    short_run(Target::CheckerSmith, 1000, 4096, fuzz::checker_smith);
}

#[test]
fn worker_frame_decoder() {
    short_run(Target::WorkerFrame, 4000, 256, fuzz::worker_frame);
}

#[test]
fn run_requests_and_plugin_names() {
    let harness = RequestHarness::new();
    short_run(Target::RunRequest, 1000, 96, |data| harness.run(data));
    // Random bytes are rarely JSON: requests shaped like real ones, with random names.
    let mut rng = SplitMix64::new(SEED);
    for _ in 0..500 {
        let name: String = rng.bytes(80).into_iter().map(|b| char::from(b % 0x60 + 0x20)).collect();
        let body = serde_json::json!({ "plugin": name, "input": rng.next_u64() as i32 });
        harness.run(body.to_string().as_bytes());
    }
    harness.run(br#"{"plugin": "echo", "input": 41}"#);
    // ABI v2 calls of `bytes`, in every combination of input form, function and
    // `"output_base64"`, with random bytes (often not UTF-8): the answer's form is checked
    // against the README's rule.
    use base64::Engine as _;
    for _ in 0..500 {
        let bytes = rng.bytes(24);
        let function = ["echo", "flip", "nope"][rng.next_u64() as usize % 3];
        let mut body = serde_json::json!({ "plugin": "bytes", "function": function });
        match String::from_utf8(bytes.clone()) {
            Ok(text) if rng.next_u64() % 2 == 0 => body["input"] = text.into(),
            _ => body["input_base64"] = base64::engine::general_purpose::STANDARD.encode(&bytes).into(),
        }
        match rng.next_u64() % 3 {
            0 => body["output_base64"] = true.into(),
            1 => body["output_base64"] = false.into(),
            _ => {}
        }
        harness.run(body.to_string().as_bytes());
    }
}

#[test]
fn accepted_modules_are_harmless() {
    let harness = Harmless::new();
    let mut ran = 0;
    let total = short_run(Target::AcceptedHarmless, 100, 4096, |data| {
        if harness.run(data) == Outcome::Ran {
            ran += 1;
        }
    });
    println!("{ran} of {total} modules passed the ABI check and ran in both modes");
    // The generator is tuned so that a fair share passes the checker; if none did, this test
    // would check nothing.
    assert!(ran > 0, "no generated module passed the ABI check");
}

/// Every module a long run found, with the outcome it must have now (`<name>.wasm` and
/// `<name>.expect`: `refused <code>` when the checker must refuse it with that violation, or
/// `ran` when it must run to an allowed outcome).
#[test]
fn regression_fixtures_keep_their_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let harness = Harmless::new();
    let mut checked = 0;
    for wasm_path in files(&dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "wasm")) {
        let wasm = std::fs::read(&wasm_path).unwrap();
        let expected = std::fs::read_to_string(wasm_path.with_extension("expect"))
            .unwrap_or_else(|e| panic!("{}: no .expect file: {e}", wasm_path.display()));
        let expected = expected.trim();
        let report = plugin_sdk::check(&wasm);
        if let Some(code) = expected.strip_prefix("refused ") {
            let codes: Vec<_> = report.violations.iter().map(|v| v.kind.code()).collect();
            assert!(codes.contains(&code), "{}: expected {code}, got {codes:?}", wasm_path.display());
        } else {
            assert_eq!(expected, "ran", "{}: unknown expectation", wasm_path.display());
            assert_eq!(harness.run_module(&wasm, &[0, 1, -1, i32::MAX]), Outcome::Ran, "{}", wasm_path.display());
        }
        checked += 1;
    }
    assert!(checked > 0, "no regression fixtures in {}", dir.display());
}
