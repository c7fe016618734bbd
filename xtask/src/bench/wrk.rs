//! `wrk`, the HTTP load generator: installing it, running it, and reading its report.

use std::{path::Path, process::Command};

use anyhow::{Context, bail};
use xshell::Shell;

use super::{CpuWait, Load};
use crate::setup;

pub(crate) fn ensure_wrk(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    if let Some(wrk) = setup::resolve_program(Path::new("wrk")) {
        return Ok(wrk);
    }
    setup::apt_install(sh, &["wrk".to_string()], "the wrk load generator")?;
    setup::resolve_program(Path::new("wrk")).context("wrk was installed but is not on PATH")
}

/// Runs wrk and parses its report; returns the figures and the number of requests.
pub(crate) fn wrk_run(
    wrk: &Path,
    lua: &Path,
    url: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<(Load, u64)> {
    let threads = connections.min(2);
    let output = Command::new(wrk)
        .args(["--latency", "-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "-s"])
        .arg(lua)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(|rest| rest.trim().to_string())
    };
    let requests_per_sec = field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let p50_ms = field("50%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN);
    let p99_ms = field("99%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN);
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let served = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let errors = non_2xx + socket_errors;
    let load = Load {
        server: "",
        connections,
        requests_per_sec,
        p50_ms,
        p99_ms,
        errors,
        cpu_us_per_request: f64::NAN,
        cpu_wait: CpuWait::UNKNOWN,
    };
    Ok((load, served))
}

/// wrk prints durations as `812.00us`, `1.20ms` or `2.01s`.
pub(super) fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_durations() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(duration_ms("812.00us"), 0.812));
        assert!(close(duration_ms("1.20ms"), 1.2));
        assert!(close(duration_ms("2.01s"), 2010.0));
        assert!(duration_ms("soon").is_nan());
    }
}
