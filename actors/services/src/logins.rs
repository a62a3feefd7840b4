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
    crate::cache::Bound {
        entries: REMEMBERED,
        live: None,
        idle: Some(FORGET_AFTER),
    }
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

    /// Drops what expired (see `crate::cache`).
    pub fn sweep(&self) {
        self.pairs.run_pending_tasks();
        self.addresses.run_pending_tasks();
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

    /// Admits an attempt, or refuses it (429) while its pair or address is
    /// delayed. An admitted attempt counts as failed at once, before its
    /// password is checked, so that guesses sent together cannot all pass
    /// the check before any of them is counted; `succeeded` and `refund`
    /// take it back. Accounts are counted by their email as the store finds
    /// them, however it is spelled.
    pub fn admit(&self, email: &str, source: Option<IpAddr>) -> Result<(), Error> {
        let Some(ip) = source.map(crate::source_block) else {
            return Ok(());
        };
        let pair = (flowmesh_store::normalize_email(email), ip);
        count(&self.pairs, pair.clone(), self.options.pair_failures, self)?;
        if let Err(refused) = count(&self.addresses, ip, self.options.address_failures, self) {
            uncount(&self.pairs, pair, self.options.pair_failures);
            return Err(refused);
        }
        Ok(())
    }

    /// Admits an attempt that names no account (an invitation token): only
    /// its address is counted.
    pub fn admit_address(&self, source: Option<IpAddr>) -> Result<(), Error> {
        let Some(ip) = source.map(crate::source_block) else {
            return Ok(());
        };
        count(&self.addresses, ip, self.options.address_failures, self)
    }

    /// Records that an admitted attempt failed: a delay it earned runs from
    /// now, not from its admission (a hash may take a while).
    pub fn failed(&self, email: Option<&str>, source: Option<IpAddr>) {
        metrics::counter!("flowmesh_login_failures_total").increment(1);
        let Some(ip) = source.map(crate::source_block) else {
            return;
        };
        if let Some(email) = email {
            let pair = (flowmesh_store::normalize_email(email), ip);
            self.restamp(&self.pairs, pair, self.options.pair_failures);
        }
        self.restamp(&self.addresses, ip, self.options.address_failures);
    }

    fn restamp<K>(&self, table: &moka::sync::Cache<K, Failures>, key: K, free: u32)
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    {
        table.entry(key).and_compute_with(|current| {
            use moka::ops::compute::Op;
            match current.map(|e| e.into_value()) {
                Some(f) => Op::Put(Failures {
                    blocked_until: self.delayed(f.count, free),
                    ..f
                }),
                None => Op::Nop,
            }
        });
    }

    /// A successful login clears its pair and takes its attempt back from
    /// its address.
    pub fn succeeded(&self, email: &str, source: Option<IpAddr>) {
        if let Some(ip) = source.map(crate::source_block) {
            self.pairs
                .invalidate(&(flowmesh_store::normalize_email(email), ip));
            uncount(&self.addresses, ip, self.options.address_failures);
        }
    }

    /// Takes back an admitted attempt that ended without an answer on the
    /// password (the engine was busy or failed).
    pub fn refund(&self, email: Option<&str>, source: Option<IpAddr>) {
        let Some(ip) = source.map(crate::source_block) else {
            return;
        };
        if let Some(email) = email {
            uncount(
                &self.pairs,
                (flowmesh_store::normalize_email(email), ip),
                self.options.pair_failures,
            );
        }
        uncount(&self.addresses, ip, self.options.address_failures);
    }

    /// Until when a key with `count` failures is delayed, past `free` of them.
    fn delayed(&self, count: u32, free: u32) -> Option<Instant> {
        let over = count.checked_sub(free)?;
        let seconds = 1u64.checked_shl(over.min(32)).unwrap_or(u64::MAX);
        Some(Instant::now() + Duration::from_secs(seconds).min(self.options.max_delay.0))
    }
}

/// Counts one attempt under `key`, atomically with the check that it is not
/// delayed (moka runs upserts of one key one at a time).
fn count<K>(
    table: &moka::sync::Cache<K, Failures>,
    key: K,
    free: u32,
    logins: &Logins,
) -> Result<(), Error>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let now = Instant::now();
    let mut refused = None;
    table.entry(key).and_upsert_with(|current| {
        let current = current.map(|e| e.into_value());
        if let Some(until) = current.and_then(|f| f.blocked_until).filter(|&u| u > now) {
            refused = Some(until - now);
            return current.unwrap_or(Failures {
                count: 0,
                blocked_until: None,
            });
        }
        let count = current.map_or(0, |f| f.count).saturating_add(1);
        Failures {
            count,
            blocked_until: logins.delayed(count, free),
        }
    });
    match refused {
        Some(retry_after) => Err(Error::RateLimited { retry_after }),
        None => Ok(()),
    }
}

/// Takes one counted attempt back; a delay ends with it once the key is
/// back within its `free` attempts.
fn uncount<K>(table: &moka::sync::Cache<K, Failures>, key: K, free: u32)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    table.entry(key).and_compute_with(|current| {
        use moka::ops::compute::Op;
        match current.map(|e| e.into_value()) {
            Some(f) if f.count > 1 => Op::Put(Failures {
                count: f.count - 1,
                blocked_until: f.blocked_until.filter(|_| f.count > free),
            }),
            _ => Op::Remove,
        }
    });
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
            assert!(logins.admit("ada@example.com", attacker).is_ok());
        }
        assert!(matches!(
            logins.admit("ada@example.com", attacker),
            Err(Error::RateLimited { .. })
        ));
        // However the email is spelled.
        assert!(logins.admit(" ADA@example.com", attacker).is_err());
        // The account owner, elsewhere, is not locked out.
        assert!(logins.admit("ada@example.com", victim).is_ok());
        // Other accounts from the attacker's address are, once it passes its own count.
        for i in 0..7 {
            assert!(
                logins
                    .admit(&format!("user{i}@example.com"), attacker)
                    .is_ok()
            );
        }
        assert!(logins.admit("bob@example.com", attacker).is_err());
        assert!(logins.admit("bob@example.com", victim).is_ok());
    }

    #[test]
    fn new_addresses_of_one_ipv6_64_do_not_reset_the_count() {
        let logins = logins();
        let from = |n: u32| Some(format!("2001:db8::{n}").parse().unwrap());
        for n in 0..3 {
            assert!(logins.admit("ada@example.com", from(n)).is_ok());
        }
        assert!(logins.admit("ada@example.com", from(99)).is_err());
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let logins = Logins::new(LoginOptions {
            pair_failures: 3,
            address_failures: u32::MAX,
            ..Default::default()
        });
        let address: IpAddr = "203.0.113.9".parse().unwrap();
        let ip = Some(address);
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            // Past the free attempts, each admitted one (as if its delay
            // had passed) doubles the next delay.
            if let Err(Error::RateLimited { retry_after }) = logins.admit("ada@example.com", ip) {
                assert!(retry_after >= last.saturating_sub(Duration::from_millis(50)));
                assert!(retry_after <= Duration::from_secs(15 * 60));
                last = retry_after;
                let key = ("ada@example.com".to_owned(), address);
                let f = logins.pairs.get(&key).unwrap();
                logins.pairs.insert(
                    key,
                    Failures {
                        blocked_until: None,
                        ..f
                    },
                );
            }
        }
        assert!(last > Duration::from_secs(14 * 60), "{last:?}");
        logins.succeeded("ada@example.com", ip);
        assert!(logins.admit("ada@example.com", ip).is_ok());
    }

    #[test]
    fn a_refunded_attempt_is_not_counted() {
        let logins = logins();
        let ip = Some("203.0.113.9".parse().unwrap());
        for _ in 0..10 {
            logins.admit("ada@example.com", ip).unwrap();
            logins.refund(Some("ada@example.com"), ip);
        }
        assert!(logins.admit("ada@example.com", ip).is_ok());
    }
}
