//! Free registrations per source address: each one creates a tenant with
//! starting credits, so one address may create only so many per period.
//! Counted per process, like failed logins; IPv6 addresses count by their
//! /64, the block one subscriber usually holds.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use flowmesh_model::HumanDuration;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How many registrations one address may make, and per how long.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrationLimit {
    /// Registrations from one address per `window` (0: no limit).
    pub per_address: u32,
    /// The period the count covers.
    pub window: HumanDuration,
}

impl Default for RegistrationLimit {
    fn default() -> Self {
        Self {
            per_address: 5,
            window: HumanDuration::from_millis(3_600_000),
        }
    }
}

/// Addresses remembered at most: a flood from many addresses cannot grow
/// the table past this.
const REMEMBERED: u64 = 100_000;

/// Registrations counted in the window that began at `since`.
#[derive(Clone, Copy, Debug)]
struct Window {
    since: Instant,
    count: u32,
}

pub(crate) struct Registrations {
    limit: RegistrationLimit,
    windows: moka::sync::Cache<IpAddr, Window>,
}

impl Registrations {
    pub fn new(limit: RegistrationLimit) -> Self {
        Self {
            windows: crate::cache::Bound {
                entries: REMEMBERED,
                live: None,
                idle: Some(limit.window.0.max(Duration::from_secs(1))),
            }
            .build(),
            limit,
        }
    }

    /// Drops what expired (see `crate::cache`).
    pub fn sweep(&self) {
        self.windows.run_pending_tasks();
    }

    /// Counts one registration from `source`, or refuses it (429) while the
    /// address has used its allowance for the window.
    pub fn admit(&self, source: Option<IpAddr>) -> Result<(), Error> {
        let (Some(ip), per_address) = (source, self.limit.per_address) else {
            return Ok(());
        };
        if per_address == 0 {
            return Ok(());
        }
        let key = crate::source_block(ip);
        let now = Instant::now();
        let window = self.limit.window.0;
        let mut refused = None;
        self.windows
            .entry(key)
            .and_upsert_with(|current| match current.map(|e| e.into_value()) {
                Some(w) if now.duration_since(w.since) < window => {
                    if w.count >= per_address {
                        refused = Some(window - now.duration_since(w.since));
                        w
                    } else {
                        Window {
                            count: w.count + 1,
                            ..w
                        }
                    }
                }
                _ => Window {
                    since: now,
                    count: 1,
                },
            });
        match refused {
            Some(retry_after) => Err(Error::RateLimited { retry_after }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_registers_its_allowance_per_window() {
        let registrations = Registrations::new(RegistrationLimit {
            per_address: 2,
            window: HumanDuration::from_millis(60_000),
        });
        let one = Some("203.0.113.9".parse().unwrap());
        let other = Some("198.51.100.7".parse().unwrap());
        assert!(registrations.admit(one).is_ok());
        assert!(registrations.admit(one).is_ok());
        assert!(matches!(
            registrations.admit(one),
            Err(Error::RateLimited { .. })
        ));
        assert!(registrations.admit(other).is_ok());
        // Another address of the same IPv6 /64 shares its count.
        let v6 = |s: &str| Some(s.parse().unwrap());
        assert!(registrations.admit(v6("2001:db8::1")).is_ok());
        assert!(registrations.admit(v6("2001:db8::2")).is_ok());
        assert!(registrations.admit(v6("2001:db8::3")).is_err());
        assert!(registrations.admit(v6("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn a_new_window_starts_a_new_count() {
        let registrations = Registrations::new(RegistrationLimit {
            per_address: 1,
            window: HumanDuration::from_millis(50),
        });
        let ip = Some("203.0.113.9".parse().unwrap());
        assert!(registrations.admit(ip).is_ok());
        assert!(registrations.admit(ip).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(registrations.admit(ip).is_ok());
    }
}
