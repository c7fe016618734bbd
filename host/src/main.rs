//! The `host` binary: read the configuration, set up logging, serve. Started by a host as one
//! of its helpers (a worker process, or one AOT compilation for an in-process host), it is that
//! instead: see `plugin_host::run_if_worker`.

use clap::Parser;
use host::config::Config;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // A closed or full log destination must not take the server down: by default the
        // subscriber reports its own write errors with `eprintln!`, which panics when stderr
        // itself is what failed.
        .log_internal_errors(false)
        // Colours only for people: log collectors get plain `key=value` text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Returns only in the server itself (helpers log through the subscriber set up above).
    plugin_host::run_if_worker();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, with every cause: returning the error from `main` would print its
            // debug form instead, a whole backtrace when RUST_BACKTRACE is set.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let served = runtime.block_on(serve(config));
    // The grace period is over (or the server failed): calls still running on blocking
    // threads are abandoned rather than waited for, so shutdown takes what it promised.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    served
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let options = config.serve_options();
    let workers = match config.isolation {
        host::config::Isolation::Process => {
            config.workers.map_or_else(plugin_host::WorkerSettings::default_workers, |workers| workers as usize)
        }
        host::config::Isolation::InProcess => 0,
    };
    let open_files =
        host::server::ensure_descriptor_headroom(options.max_connections, workers).map_err(anyhow::Error::msg)?;
    tracing::info!(open_files, max_connections = options.max_connections, "file descriptor limit");
    let state = host::build_state(&config)?;
    let listener = listen(config.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (--listen / LISTEN_ADDR): {e}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    host::announce_listening(addr)?;
    host::serve(listener, state, shutdown_signal(), options).await
}

/// Binds the listening socket with a long accept backlog (the kernel caps it at
/// `net.core.somaxconn`): `TcpListener::bind`'s 128 overflows in a burst of connections, and
/// the kernel then drops handshakes, probes' included, before the server can see them.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Completes on Ctrl-C, SIGTERM (what Kubernetes sends before killing a pod) or SIGHUP (a
/// closed terminal, or an operator's reload habit): each drains in-flight requests rather than
/// dying at once, which is what SIGHUP's default action would do.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let on = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = on(SignalKind::terminate()) => {}
        () = on(SignalKind::hangup()) => {}
    }
}
