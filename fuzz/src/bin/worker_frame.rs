//! AFL++ entry point of the `worker_frame` target (see the `fuzz` crate); run by `cargo xtask fuzz worker_frame`.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::worker_frame(data));
}
