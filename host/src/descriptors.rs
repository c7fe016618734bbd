//! File descriptors: how many this process has open against its limit, which readiness
//! reports and the accept loop keeps room for.

/// File descriptors kept free for what the server must always be able to do (accept a probe,
/// restart a worker, open a plugin file): fewer free than this makes `/readyz` say not ready,
/// and start-up refuses a connection limit that would leave fewer.
pub const FD_HEADROOM: u64 = 64;

/// This process's open file descriptors against its limit.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Descriptors {
    pub open: u64,
    pub limit: u64,
}

impl Descriptors {
    /// Now, from `/proc/self/fd` and `RLIMIT_NOFILE`'s soft limit (unlimited if unknown).
    pub fn now() -> Self {
        let open = std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count() as u64);
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft);
        Descriptors { open, limit }
    }

    /// Whether at least [`FD_HEADROOM`] descriptors are free.
    pub fn have_headroom(self) -> bool {
        self.open.saturating_add(FD_HEADROOM) <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_the_descriptor_headroom() {
        assert!(Descriptors { open: 100, limit: 164 }.have_headroom());
        assert!(!Descriptors { open: 101, limit: 164 }.have_headroom());
        assert!(Descriptors::now().have_headroom(), "{:?}", Descriptors::now());
    }
}
