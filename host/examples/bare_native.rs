//! The physical limit of the HTTP stack for `cargo xtask bench`: the smallest axum server that
//! answers `POST /run` `{"plugin":"hello","input":N}` with `{"output":2N+1}`. No hop to another
//! thread, no metrics, no tracing, no request ids: what any server on this stack costs.
//!
//! `cargo run --release -p host --example bare_native -- 127.0.0.1:8091`

#[path = "common/bare.rs"]
mod bare;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8091".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // `cargo xtask bench` reads the address from this line, as it does from the host's.
    host::announce_listening(listener.local_addr()?)?;
    axum::serve(listener, bare::router()).await?;
    Ok(())
}
