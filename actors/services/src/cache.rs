//! Bounded caches. What the engine keeps per tenant, workflow or
//! credential has a capacity and an expiry, and is swept regularly: a
//! long-running process holds what recent work uses, not what every
//! tenant ever did.

use std::hash::Hash;
use std::time::Duration;

pub type Cache<K, V> = moka::sync::Cache<K, V>;

/// A cache's capacity and expiry.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Most entries kept; the least used go first.
    pub entries: u64,
    /// An entry goes this long after it was written.
    pub live: Option<Duration>,
    /// An entry goes this long after it was last read or written.
    pub idle: Option<Duration>,
}

impl Bound {
    pub fn build<K, V>(self) -> Cache<K, V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let mut builder = Cache::builder().max_capacity(self.entries);
        if let Some(live) = self.live {
            builder = builder.time_to_live(live);
        }
        if let Some(idle) = self.idle {
            builder = builder.time_to_idle(idle);
        }
        builder.build()
    }
}

/// How often expired entries are dropped. moka drops them only while a
/// cache is used, and an idle process uses none: without sweeps, what a
/// burst of tenants left behind would stay.
pub fn sweep_every(idle: Duration) -> Duration {
    (idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_keeps_at_most_its_capacity() {
        let cache: Cache<u32, u32> = Bound {
            entries: 10,
            live: None,
            idle: None,
        }
        .build();
        for n in 0..1_000 {
            cache.insert(n, n);
        }
        cache.run_pending_tasks();
        assert!(cache.entry_count() <= 10, "{}", cache.entry_count());
    }

    #[test]
    fn entries_expire_after_writing_and_after_idling() {
        for (live, idle) in [
            (Some(Duration::from_millis(20)), None),
            (None, Some(Duration::from_millis(20))),
        ] {
            let cache: Cache<u32, u32> = Bound {
                entries: 100,
                live,
                idle,
            }
            .build();
            cache.insert(1, 1);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                cache.run_pending_tasks();
                if cache.entry_count() == 0 {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "never expired");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
