//! Rate limits of the public webhook routes, apart from the tenants' API
//! limits: anyone can call a webhook, so an anonymous flood must spend
//! neither the tenant's API allowance nor more than its own share of the
//! engine. One token bucket per client address, taken before anything
//! else, and one per existing webhook, taken once the caller is checked:
//! callers its `auth` refuses draw on a bucket of their own, so they cannot
//! turn its rightful callers away.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flowmesh_api::ErrorCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Requests per second allowed to webhooks; `None` turns a limit off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookLimitOptions {
    /// From one client address, to any webhook.
    pub per_address: Option<u32>,
    /// To one webhook (tenant, method and path), from anyone; as many
    /// again for callers its `auth` refuses.
    pub per_route: Option<u32>,
}

impl Default for WebhookLimitOptions {
    fn default() -> Self {
        Self {
            per_address: Some(1_000),
            per_route: Some(5_000),
        }
    }
}

type Limiter = Arc<DefaultDirectRateLimiter>;

/// Buckets remembered at most; a flood of addresses cannot grow the tables
/// past this.
const REMEMBERED: u64 = 100_000;
/// A bucket untouched this long is full again, so it can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// How often forgotten buckets are dropped: moka drops them only while the
/// tables are used, and after a burst of addresses nothing may use them.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

pub(crate) struct WebhookLimits {
    options: WebhookLimitOptions,
    addresses: moka::sync::Cache<IpAddr, Limiter>,
    routes: moka::sync::Cache<(RouteKey, Caller), Limiter>,
}

/// A webhook's bucket key: a digest, so a route costs the same few bytes
/// however long its path.
type RouteKey = [u8; 32];

fn buckets<K>(forget_after: Duration) -> moka::sync::Cache<K, Limiter>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(REMEMBERED)
        .time_to_idle(forget_after)
        .build()
}

/// Sweeps the tables while the limits are in use.
async fn sweep_while_alive(limits: Weak<WebhookLimits>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        limits.sweep();
    }
}

fn bucket(per_second: u32) -> Limiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    // A second's worth at once: webhook senders deliver in bursts.
    Arc::new(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(rate),
    ))
}

/// A webhook that exists, as the caller reached it: its tenant's slug, and
/// the method and path as sent (the router takes `post` to a `POST`
/// webhook, and ignores slashes around the path).
pub(crate) struct WebhookRoute<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

impl WebhookRoute<'_> {
    fn key(&self) -> RouteKey {
        let mut digest = Sha256::new();
        for part in [
            self.tenant,
            &self.method.to_ascii_uppercase(),
            self.path.trim_matches('/'),
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.finalize().into()
    }
}

/// Whether the webhook's `auth` admitted the caller.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Caller {
    Admitted,
    Refused,
}

impl WebhookLimits {
    pub fn new(options: WebhookLimitOptions) -> Arc<Self> {
        Self::forgetting_after(options, FORGET_AFTER)
    }

    fn forgetting_after(options: WebhookLimitOptions, after: Duration) -> Arc<Self> {
        let limits = Arc::new(Self {
            options,
            addresses: buckets(after),
            routes: buckets(after),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_while_alive(Arc::downgrade(&limits)));
        }
        limits
    }

    /// Drops the buckets forgotten.
    fn sweep(&self) {
        self.addresses.run_pending_tasks();
        self.routes.run_pending_tasks();
    }

    /// Takes a token from the client address's bucket, or 429.
    pub fn admit_source(&self, source: IpAddr) -> Result<(), ApiError> {
        match self.options.per_address {
            Some(rate) => check(
                &self
                    .addresses
                    .get_with(flowmesh_services::source_block(source), || bucket(rate)),
                "from your address",
            ),
            None => Ok(()),
        }
    }

    /// Takes a token from the webhook's bucket for `caller`, or 429.
    pub fn admit_route(&self, route: &WebhookRoute<'_>, caller: Caller) -> Result<(), ApiError> {
        match self.options.per_route {
            Some(rate) => check(
                &self.routes.get_with((route.key(), caller), || bucket(rate)),
                "to this webhook",
            ),
            None => Ok(()),
        }
    }
}

fn check(limiter: &DefaultDirectRateLimiter, what: &str) -> Result<(), ApiError> {
    limiter.check().map_err(|not_until| {
        metrics::counter!("flowmesh_webhook_requests_limited_total").increment(1);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut error = ApiError::new(
            ErrorCode::RateLimited,
            format!("too many requests {what}; retrying later is safe"),
        );
        error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &'static str, path: &'static str) -> WebhookRoute<'static> {
        WebhookRoute {
            tenant: "acme",
            method,
            path,
        }
    }

    #[test]
    fn each_address_has_its_own_bucket() {
        let limits = WebhookLimits::new(WebhookLimitOptions {
            per_address: Some(5),
            per_route: None,
        });
        let source = |s: &str| s.parse::<IpAddr>().unwrap();
        let admitted = (0..20)
            .filter(|_| limits.admit_source(source("192.0.2.1")).is_ok())
            .count();
        assert_eq!(admitted, 5, "one address's burst");
        assert!(limits.admit_source(source("192.0.2.2")).is_ok());
        // An IPv6 /64 is one source, whichever of its addresses calls.
        let admitted = (0..20)
            .filter(|n| {
                limits
                    .admit_source(source(&format!("2001:db8::{n}")))
                    .is_ok()
            })
            .count();
        assert_eq!(admitted, 5, "one /64's burst");
    }

    #[test]
    fn spellings_of_one_route_share_its_bucket() {
        let limits = WebhookLimits::new(WebhookLimitOptions {
            per_address: None,
            per_route: Some(3),
        });
        let admitted = [
            route("POST", "a"),
            route("post", "/a"),
            route("Post", "a/"),
            route("pOST", "//a//"),
        ]
        .iter()
        .filter(|r| limits.admit_route(r, Caller::Admitted).is_ok())
        .count();
        assert_eq!(admitted, 3, "one route's burst, however spelled");
        assert!(
            limits
                .admit_route(&route("POST", "b"), Caller::Admitted)
                .is_ok()
        );
        assert!(
            limits
                .admit_route(&route("GET", "a"), Caller::Admitted)
                .is_ok()
        );
    }

    #[test]
    fn unused_buckets_are_dropped() {
        let limits = WebhookLimits::forgetting_after(
            WebhookLimitOptions {
                per_address: Some(5),
                per_route: Some(5),
            },
            Duration::from_millis(20),
        );
        for n in 0..50u8 {
            let source = IpAddr::from([192, 0, 2, n]);
            limits.admit_source(source).unwrap();
            let path = format!("p{n}");
            let route = WebhookRoute {
                tenant: "acme",
                method: "POST",
                path: &path,
            };
            limits.admit_route(&route, Caller::Admitted).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            limits.sweep();
            let left = limits.addresses.entry_count() + limits.routes.entry_count();
            if left == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{left} buckets kept");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn refused_callers_spend_a_bucket_of_their_own() {
        let limits = WebhookLimits::new(WebhookLimitOptions {
            per_address: None,
            per_route: Some(2),
        });
        let refused = (0..10)
            .filter(|_| {
                limits
                    .admit_route(&route("POST", "a"), Caller::Refused)
                    .is_ok()
            })
            .count();
        assert_eq!(refused, 2);
        assert!(
            limits
                .admit_route(&route("POST", "a"), Caller::Admitted)
                .is_ok()
        );
    }
}
