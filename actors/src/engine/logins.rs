//! What keeps anonymous password traffic from taking the engine down or
//! guessing a password: a small pool for password hashing (argon2 takes
//! about 19 MiB and tens of milliseconds a hash), and growing delays after
//! failed logins, counted per (account, address) pair and per address, so
//! that nobody can lock a victim out from elsewhere.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowmesh_model::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;

/// Settings of password work and failed-login delays.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginOptions {
    /// Password hashes computed at once; the rest wait.
    pub hashing_concurrency: usize,
    /// How long a request waits for a hashing slot before it gets 503.
    pub hashing_wait: HumanDuration,
    /// Failed logins of one account from one address before delays start.
    pub pair_failures: u32,
    /// Failed logins from one address (any account) before delays start.
    pub address_failures: u32,
    /// The longest delay; each further failure doubles it up to this.
    pub max_delay: HumanDuration,
}

impl Default for LoginOptions {
    fn default() -> Self {
        Self {
            hashing_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            hashing_wait: HumanDuration::from_millis(2_000),
            pair_failures: 5,
            address_failures: 50,
            max_delay: HumanDuration::from_millis(15 * 60_000),
        }
    }
}

/// Failed logins of one key, and until when the next one is refused.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
}

/// Most keys remembered: an address flood cannot grow the tables past this.
const REMEMBERED: u64 = 100_000;
/// A key without failures for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3_600);

fn remembered<K>() -> moka::sync::Cache<K, Failures>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(REMEMBERED)
        .time_to_idle(FORGET_AFTER)
        .build()
}

pub(crate) struct Logins {
    options: LoginOptions,
    hashing: Semaphore,
    pairs: moka::sync::Cache<(String, IpAddr), Failures>,
    addresses: moka::sync::Cache<IpAddr, Failures>,
}

impl Logins {
    pub fn new(options: LoginOptions) -> Arc<Self> {
        Arc::new(Self {
            hashing: Semaphore::new(options.hashing_concurrency.max(1)),
            options,
            pairs: remembered(),
            addresses: remembered(),
        })
    }

    /// A slot for one password hash, or 503 once the wait is over.
    pub async fn hashing_slot(&self) -> Result<SemaphorePermit<'_>, Error> {
        match tokio::time::timeout(self.options.hashing_wait.0, self.hashing.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("flowmesh_password_hashing_refused_total").increment(1);
                Err(Error::Unavailable(
                    "too many sign-ins at once; retrying shortly is safe".into(),
                ))
            }
        }
    }

    /// Refuses an attempt that comes while its pair or address is delayed.
    pub fn check(&self, email: &str, source: Option<IpAddr>) -> Result<(), Error> {
        let Some(ip) = source else { return Ok(()) };
        let now = Instant::now();
        let pair = self.pairs.get(&(email.to_owned(), ip));
        let address = self.addresses.get(&ip);
        let until = [pair, address]
            .into_iter()
            .flatten()
            .filter_map(|f| f.blocked_until)
            .filter(|&until| until > now)
            .max();
        match until {
            Some(until) => Err(Error::RateLimited {
                retry_after: until - now,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, email: &str, source: Option<IpAddr>) {
        let Some(ip) = source else { return };
        let delayed = |count: u32, free: u32| {
            let over = count.checked_sub(free)?;
            let seconds = 1u64.checked_shl(over.min(32)).unwrap_or(u64::MAX);
            Some(Instant::now() + Duration::from_secs(seconds).min(self.options.max_delay.0))
        };
        let bump = |failures: Option<Failures>, free: u32| {
            let count = failures.map_or(0, |f| f.count).saturating_add(1);
            Failures {
                count,
                blocked_until: delayed(count, free),
            }
        };
        let key = (email.to_owned(), ip);
        self.pairs.insert(
            key.clone(),
            bump(self.pairs.get(&key), self.options.pair_failures),
        );
        self.addresses.insert(
            ip,
            bump(self.addresses.get(&ip), self.options.address_failures),
        );
        metrics::counter!("flowmesh_login_failures_total").increment(1);
    }

    /// A successful login clears its pair (not its address).
    pub fn succeeded(&self, email: &str, source: Option<IpAddr>) {
        if let Some(ip) = source {
            self.pairs.invalidate(&(email.to_owned(), ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> Arc<Logins> {
        Logins::new(LoginOptions {
            pair_failures: 3,
            address_failures: 10,
            ..Default::default()
        })
    }

    #[test]
    fn failures_delay_the_pair_and_then_the_address() {
        let logins = logins();
        let (attacker, victim) = (
            Some("203.0.113.9".parse().unwrap()),
            Some("198.51.100.7".parse().unwrap()),
        );
        for _ in 0..3 {
            assert!(logins.check("ada@example.com", attacker).is_ok());
            logins.failed("ada@example.com", attacker);
        }
        assert!(matches!(
            logins.check("ada@example.com", attacker),
            Err(Error::RateLimited { .. })
        ));
        // The account owner, elsewhere, is not locked out.
        assert!(logins.check("ada@example.com", victim).is_ok());
        // Other accounts from the attacker's address are, once it passes its own count.
        assert!(logins.check("bob@example.com", attacker).is_ok());
        for i in 0..7 {
            logins.failed(&format!("user{i}@example.com"), attacker);
        }
        assert!(logins.check("bob@example.com", attacker).is_err());
        assert!(logins.check("bob@example.com", victim).is_ok());
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let logins = logins();
        let ip = Some("203.0.113.9".parse().unwrap());
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            logins.failed("ada@example.com", ip);
            if let Err(Error::RateLimited { retry_after }) = logins.check("ada@example.com", ip) {
                assert!(retry_after >= last.saturating_sub(Duration::from_millis(50)));
                assert!(retry_after <= Duration::from_secs(15 * 60));
                last = retry_after;
            }
        }
        assert!(last > Duration::from_secs(14 * 60), "{last:?}");
        logins.succeeded("ada@example.com", ip);
        // The address stays counted.
        assert!(logins.check("ada@example.com", ip).is_err());
    }
}
