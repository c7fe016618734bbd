//! AFL++ entry point of the `checker_bytes` target (see the `fuzz` crate); run by `cargo xtask fuzz checker_bytes`.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::checker_bytes(data));
}
