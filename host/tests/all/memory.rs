//! Memory a server keeps over hot swaps, in a run short enough for every test run (the long
//! runs in `long` measure thousands).

use serde_json::json;

use crate::{
    long::{call, host, mappings, resident_kib, version_of},
    support::{plugin_bytes, replace_atomically},
};

/// Issue 28: in-process, every hot swap kept a version's idle instances (two mappings and
/// about 280 KB each, through a reference cycle) and the LLVM context of its AOT compilation
/// (about 70 KB). 100 swaps of the real binary, each a new version compiled and called once:
/// before, +600 mappings and +35 MiB; now a handful of mappings and well under a megabyte.
#[test]
fn in_process_hot_swaps_leave_no_mappings_or_memory_behind() {
    let dir = tempfile::TempDir::new().unwrap();
    let base = plugin_bytes("hello");
    std::fs::write(dir.path().join("hello.wasm"), &base).unwrap();
    let host = host(dir.path(), &[("ISOLATION", "in-process")]);
    let pid = host.child.id();
    let swap = |i: u32| {
        replace_atomically(dir.path(), "hello", &version_of(&base, i));
        assert_eq!(
            call(&host.addr, &json!({"plugin": "hello", "input": 21})),
            (200, json!({"output": 43})),
            "swap {i}"
        );
    };
    // A few swaps first, so that the threads and allocator arenas a call uses exist already.
    (0..10).for_each(swap);
    let (kib, maps) = (resident_kib(pid), mappings(pid));
    (10..110).for_each(swap);
    let (kib_after, maps_after) = (resident_kib(pid), mappings(pid));
    println!("100 in-process hot swaps: {kib} -> {kib_after} KiB resident, {maps} -> {maps_after} mappings");
    assert!(maps_after <= maps + 20, "mappings grew from {maps} to {maps_after} over 100 hot swaps");
    assert!(kib_after <= kib + 4 * 1024, "resident memory grew from {kib} to {kib_after} KiB over 100 hot swaps");
}
