//! File descriptors: the soft limit is raised to the hard one at start, then shared out so that
//! what anyone on the network can open before authenticating can never take them all.
//!
//! Shares of the limit: unauthenticated SSH connections at most an eighth, HTTPS connections at
//! most a quarter; the rest (at least five eighths) stays for authenticated sessions (two
//! descriptors each, plus recordings), the database and the logs.

use rampart_ssh::admission::PreAuthLimits;

/// What the listeners may hold, from the process's descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The soft limit after raising it.
    pub limit: u64,
    pub ssh_unauthenticated: usize,
    pub http_connections: usize,
}

impl DescriptorBudget {
    pub fn for_limit(limit: u64) -> Self {
        let share = |divisor: u64| {
            usize::try_from(limit / divisor)
                .unwrap_or(usize::MAX)
                .max(1)
        };
        Self {
            limit,
            ssh_unauthenticated: share(8),
            http_connections: share(4),
        }
    }

    /// The configured pre-authentication limits, within this budget.
    pub fn ssh(&self, configured: PreAuthLimits) -> PreAuthLimits {
        let max_startups = configured.max_startups.capped(self.ssh_unauthenticated);
        PreAuthLimits {
            max_startups,
            per_source_max_startups: configured.per_source_max_startups.min(max_startups.full),
            ..configured
        }
    }
}

/// Raises the soft descriptor limit to the hard limit (what an unprivileged process may do)
/// and returns the budget for the result; if the limit cannot be read, the budget of the
/// common default (1024).
pub fn raise_limit() -> DescriptorBudget {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let limit = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(err) => {
                tracing::warn!(error = %err, soft, hard, "cannot raise the file descriptor limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the file descriptor limit; assuming 1024");
            1024
        }
    };
    DescriptorBudget::for_limit(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_ssh::admission::MaxStartups;

    #[test]
    fn a_small_limit_shrinks_the_caps_and_leaves_a_reserve() {
        let budget = DescriptorBudget::for_limit(1024);
        assert_eq!(
            (budget.ssh_unauthenticated, budget.http_connections),
            (128, 256)
        );
        let configured = PreAuthLimits {
            max_startups: MaxStartups::parse("100:30:1000").unwrap(),
            per_source_max_startups: 500,
            ..PreAuthLimits::default()
        };
        let ssh = budget.ssh(configured);
        assert_eq!(ssh.max_startups.full, 128);
        assert_eq!(ssh.max_startups.start, 100);
        assert_eq!(ssh.per_source_max_startups, 128);
        // More than half stays for everything else.
        let reserve = budget.limit - (budget.ssh_unauthenticated + budget.http_connections) as u64;
        assert!(reserve > budget.limit / 2, "{reserve}");
        // A large limit leaves the configuration as it is.
        let large = DescriptorBudget::for_limit(1 << 20);
        assert_eq!(large.ssh(configured), configured);
    }
}
