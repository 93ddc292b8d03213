//! The process's file limit, which bounds how many connections a server can hold.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// File descriptors kept for everything but client connections: the database pool, the
/// SQLite files, blobs and the component cache, agents' outbound HTTP, webhooks, OIDC, logs.
/// At the cap, a new connection still finds a descriptor, and so does the rest of the node.
pub const FILE_RESERVE: u64 = 256;

/// The fewest connections a server holds, even under a file limit too low for the reserve.
const MIN_CONNECTIONS: u64 = 16;

/// Raises the soft file limit to the hard one (as Go and most servers do: the soft limit's
/// usual 1,024 is a relic of `select`), and returns the soft limit in force afterwards, or
/// `None` when it is unlimited.
pub fn raise_file_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the file limit to the hard limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// How many connections a server with `file_limit` descriptors may hold when the operator
/// asks for `configured`: at most the limit less [`FILE_RESERVE`].
pub fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(file_limit) = file_limit else {
        return configured;
    };
    let room = file_limit
        .saturating_sub(FILE_RESERVE)
        .max(MIN_CONNECTIONS.min(file_limit / 2));
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        for (configured, limit, cap) in [
            (10_000, Some(20_000), 10_000),
            (10_000, Some(1_024), 768),
            (100, Some(1_024), 100),
            (10_000, None, 10_000),
            // Too few descriptors for the reserve: half of them, at most 16.
            (10_000, Some(200), 16),
            (10_000, Some(20), 10),
        ] {
            assert_eq!(
                connection_cap(configured, limit),
                cap,
                "{configured} {limit:?}"
            );
        }
    }
}
