//! The host binary under the pressure issue 28 found: listings of thousands of versions next
//! to readiness probes, stray files that used to warn on every listing, and trickling streams
//! plus looping callers next to a quick plugin. Each prints its figures (`--nocapture`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    binary::start,
    support::{fault_bytes, plugin_bytes, plugin_dir},
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A plugin folder with `x/` holding `versions` versions (copies of `hello`) and three files
/// that are not versions.
fn many_versions(versions: usize) -> tempfile::TempDir {
    let dir = plugin_dir(&["hello"]);
    let folder = dir.path().join("x");
    std::fs::create_dir(&folder).unwrap();
    let hello = plugin_bytes("hello");
    for i in 0..versions {
        std::fs::write(folder.join(format!("1.{}.{}.wasm", i / 100, i % 100)), &hello).unwrap();
    }
    for stray in ["README.txt", "latest.wasm", "v1.0.0.wasm"] {
        std::fs::write(folder.join(stray), b"not a version").unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_stays_ready_while_eight_clients_list_three_thousand_versions() {
    let dir = many_versions(3000);
    let (_host, addr, _lines) = start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--workers", "2"]);
    });
    let client = reqwest::Client::new();
    let versions_url = format!("http://{addr}/plugins/x/versions");
    // The first listing reads and hashes every version once.
    let started = Instant::now();
    let first: Value = client.get(&versions_url).send().await.unwrap().json().await.unwrap();
    println!("first listing of 3,000 versions (reads and hashes each): {:?}", started.elapsed());
    assert_eq!(first["versions"].as_array().map(Vec::len), Some(3000), "{first}");

    let stop = Arc::new(AtomicBool::new(false));
    let listers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (client.clone(), versions_url.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut ok, mut refused, mut took) = (0, 0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let response = client.get(&url).send().await.unwrap();
                    match response.status().as_u16() {
                        200 => {
                            let body: Value = response.json().await.unwrap();
                            assert_eq!(body["versions"].as_array().map(Vec::len), Some(3000));
                            ok += 1;
                            took.push(started.elapsed());
                        }
                        503 => refused += 1,
                        other => panic!("versions listing answered {other}"),
                    }
                }
                (ok, refused, took)
            })
        })
        .collect();
    let mut probes = Vec::new();
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(5) {
        let started = Instant::now();
        let response = client.get(format!("http://{addr}/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        probes.push((status, started.elapsed(), body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut refused, mut took) = (0, 0, Vec::new());
    for lister in listers {
        let (o, r, t) = lister.await.unwrap();
        (ok, refused) = (ok + o, refused + r);
        took.extend(t);
    }
    took.sort();
    let mut probe_times: Vec<Duration> = probes.iter().map(|(_, took, _)| *took).collect();
    probe_times.sort();
    let ready = probes.iter().filter(|(status, _, _)| *status == 200).count();
    println!(
        "8 clients listing 3,000 versions for 5 s: {ok} answered (p50 {:?}, p99 {:?}), {refused} refused 503; \
         /readyz {ready} of {} probes 200 (p50 {:?}, max {:?})",
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        probes.len(),
        percentile(&probe_times, 0.5),
        probe_times.last().unwrap(),
    );
    for (status, _, body) in &probes {
        assert_eq!(*status, 200, "a readiness probe failed while listings ran: {body}");
    }
    assert!(ok > 8, "listings were answered from cached hashes ({ok} in 5 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stray_file_is_warned_about_once_per_change_not_per_listing() {
    let dir = many_versions(20);
    let (_host, addr, lines) = start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--workers", "2"]);
    });
    let client = reqwest::Client::new();
    let stray_warnings = |lines: &std::sync::mpsc::Receiver<String>| {
        lines.try_iter().filter(|line| line.contains("WARN") && line.contains("version folder")).count()
    };
    // Listings, and misses (a version nobody has lists the folder again each time).
    let hammer = || async {
        let started = Instant::now();
        let mut calls = 0;
        while started.elapsed() < Duration::from_secs(3) {
            let listing = client.get(format!("http://{addr}/plugins/x/versions")).send().await.unwrap();
            assert_eq!(listing.status(), 200);
            let miss = client
                .post(format!("http://{addr}/run"))
                .json(&json!({"plugin": "x", "input": 1, "version": "=9.9.9"}))
                .send()
                .await
                .unwrap();
            assert_eq!(miss.status(), 404);
            calls += 2;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        calls
    };
    let calls = hammer().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warned = stray_warnings(&lines);
    println!("{calls} listings and misses over a folder with 3 stray files: {warned} warnings");
    assert_eq!(warned, 3, "one warning per stray file");

    // A changed stray file is warned about again, once.
    std::fs::write(dir.path().join("x/README.txt"), b"changed, still not a version").unwrap();
    let calls = hammer().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warned = stray_warnings(&lines);
    println!("{calls} more after changing one: {warned} more warnings");
    assert_eq!(warned, 1, "one warning for the changed file");
}

/// A request body that sends one byte every `pause`, for at most `for_how_long`.
fn trickle(pause: Duration, for_how_long: Duration) -> reqwest::Body {
    let bytes = (for_how_long.as_millis() / pause.as_millis().max(1)) as usize;
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        if sent == bytes {
            return None;
        }
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(vec![b'a']), sent + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

/// Two trickling streams hold two of three workers while `loopers` clients keep calling a
/// plugin that loops to its deadline; `hello` must keep answering in milliseconds, and the
/// streams must end with 408 `stream_timeout` once a rate window shows them too slow.
async fn hello_next_to_trickling_streams_and_loopers(loopers: usize, measure: Duration, window_secs: u64) {
    let dir = plugin_dir(&["hello", "sha256"]);
    std::fs::write(dir.path().join("loop-process.wasm"), fault_bytes("loop-process")).unwrap();
    let window = window_secs.to_string();
    let (_host, addr, _lines) = start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--workers", "3", "--call-timeout-ms", "1000"])
            .args(["--stream-rate-window-secs", &window]);
    });
    let client = reqwest::Client::new();
    let (run_client, run_url) = (client.clone(), format!("http://{addr}/run"));
    let run = move |plugin: &'static str, input: i32| {
        let (client, url) = (run_client.clone(), run_url.clone());
        async move {
            let response = client.post(url).json(&json!({"plugin": plugin, "input": input})).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Compiled before the clock starts.
    assert_eq!(run("hello", 1).await.0, 200);
    let warm = client.post(format!("http://{addr}/plugins/sha256/functions/sha256sum")).body("warm").send().await;
    assert_eq!(warm.unwrap().status(), 200);

    let streams_started = Instant::now();
    let streams: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            let url = format!("http://{addr}/plugins/sha256/functions/sha256sum");
            tokio::spawn(async move {
                let body = trickle(Duration::from_millis(500), Duration::from_secs(120));
                let response = client.post(url).body(body).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                (status, body["error"]["code"].as_str().map(str::to_owned), streams_started.elapsed())
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let looping: Vec<_> = (0..loopers)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let call = run("loop-process", i as i32);
            let run = run.clone();
            tokio::spawn(async move {
                let mut outcomes = vec![call.await.0];
                while !stop.load(Ordering::Relaxed) {
                    outcomes.push(run("loop-process", 1).await.0);
                }
                outcomes
            })
        })
        .collect();
    // The looping plugin's first calls show it slow; from then on it waits its turn.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut took = Vec::new();
    let measuring = Instant::now();
    let mut i = 0;
    while measuring.elapsed() < measure {
        let started = Instant::now();
        let (status, body) = run("hello", i).await;
        took.push(started.elapsed());
        assert_eq!((status, &body), (200, &json!({"output": 2 * i + 1})), "hello after {:?}", measuring.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    took.sort();
    let mut looper_outcomes = std::collections::BTreeMap::<u16, usize>::new();
    for looper in looping {
        for status in looper.await.unwrap() {
            *looper_outcomes.entry(status).or_default() += 1;
        }
    }
    let mut stream_ends = Vec::new();
    for stream in streams {
        stream_ends.push(stream.await.unwrap());
    }
    println!(
        "hello next to 2 trickling streams and {loopers} looping callers, {} calls over {measure:?}: p50 {:?}, p99 \
         {:?}, max {:?}; looping calls by status {looper_outcomes:?}; streams ended {stream_ends:?}",
        took.len(),
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took.last().unwrap(),
    );
    assert!(percentile(&took, 0.5) < Duration::from_millis(50), "hello p50 {:?}", percentile(&took, 0.5));
    assert!(percentile(&took, 0.99) < Duration::from_millis(500), "hello p99 {:?}", percentile(&took, 0.99));
    for (status, code, ended) in stream_ends {
        assert_eq!((status, code.as_deref()), (408, Some("stream_timeout")), "a trickling stream");
        // Judged at the end of its first rate window (plus the time its worker took to open).
        assert!(ended < Duration::from_secs(window_secs + 5), "a trickling stream lasted {ended:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hello_stays_fast_next_to_trickling_streams_and_looping_callers() {
    hello_next_to_trickling_streams_and_loopers(16, Duration::from_secs(5), 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: a minute; run with --run-ignored only"]
async fn long_hello_stays_fast_while_streams_end_and_loopers_take_their_share() {
    // Past the streams' rate window: the streams end with 408 and the loopers get two workers,
    // while hello keeps the third.
    hello_next_to_trickling_streams_and_loopers(16, Duration::from_secs(60), 10).await;
}
