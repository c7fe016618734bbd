//! The criterion results of `host/benches/runtime.rs` and `host/benches/request_path.rs`, read
//! from `target/criterion`.

use std::{fs, path::Path};

use anyhow::Context;

use super::{BYTES_CALLS, BYTES_RUNNERS, MICRO_FUNCTIONS, REQUEST_PATH};

/// One criterion result: group/function and its mean time in nanoseconds.
#[derive(Debug)]
pub(super) struct Micro {
    pub(super) group: String,
    pub(super) function: String,
    pub(super) mean_ns: f64,
}

pub(super) fn read_criterion(dir: &Path) -> anyhow::Result<Vec<Micro>> {
    let bytes = BYTES_RUNNERS.iter().flat_map(|runner| BYTES_CALLS.iter().map(move |call| format!("{runner}_{call}")));
    let entries = ["hello", "primes"]
        .iter()
        .flat_map(|group| MICRO_FUNCTIONS.iter().map(move |function| (*group, function.to_string())))
        .chain(bytes.map(|function| ("bytes", function)))
        .chain(REQUEST_PATH.iter().map(|function| ("request_path", function.to_string())));
    let mut results = Vec::new();
    for (group, function) in entries {
        let path = dir.join(group).join(&function).join("new/estimates.json");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let estimates: serde_json::Value = serde_json::from_str(&text)?;
        let mean_ns = estimates["mean"]["point_estimate"].as_f64().context("criterion estimate")?;
        results.push(Micro { group: group.into(), function, mean_ns });
    }
    Ok(results)
}

pub(super) fn mean(micro: &[Micro], group: &str, function: &str) -> f64 {
    micro.iter().find(|m| m.group == group && m.function == function).map_or(f64::NAN, |m| m.mean_ns)
}
