//! Rate limits of the public webhook routes, apart from the tenants' API
//! limits: anyone can call a webhook, so an anonymous flood must spend
//! neither the tenant's API allowance nor more than its own share of the
//! engine. One token bucket per client address and one per route.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Requests per second allowed to webhooks; `None` turns a limit off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookLimitOptions {
    /// From one client address, to any webhook.
    pub per_address: Option<u32>,
    /// To one webhook (tenant, method and path), from anyone.
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

/// Buckets remembered at most; a flood of addresses or made-up paths
/// cannot grow the tables past this.
const REMEMBERED: u64 = 100_000;
/// A bucket untouched this long is full again, so it can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct WebhookLimits {
    options: WebhookLimitOptions,
    addresses: moka::sync::Cache<IpAddr, Limiter>,
    routes: moka::sync::Cache<String, Limiter>,
}

fn buckets<K>() -> moka::sync::Cache<K, Limiter>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(REMEMBERED)
        .time_to_idle(FORGET_AFTER)
        .build()
}

fn bucket(per_second: u32) -> Limiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    // A second's worth at once: webhook senders deliver in bursts.
    Arc::new(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(rate),
    ))
}

/// The call to a webhook being admitted.
pub(crate) struct WebhookCall<'a> {
    pub source: IpAddr,
    pub tenant: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

impl WebhookLimits {
    pub fn new(options: WebhookLimitOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            addresses: buckets(),
            routes: buckets(),
        })
    }

    /// Takes a token from the caller's and the route's buckets, or 429.
    pub fn admit(&self, call: &WebhookCall<'_>) -> Result<(), ApiError> {
        if let Some(rate) = self.options.per_address {
            let limiter = self.addresses.get_with(call.source, || bucket(rate));
            check(&limiter, "from your address")?;
        }
        if let Some(rate) = self.options.per_route {
            let key = format!(
                "{}\n{}\n{}",
                call.tenant,
                call.method,
                call.path.trim_matches('/')
            );
            let limiter = self.routes.get_with(key, || bucket(rate));
            check(&limiter, "to this webhook")?;
        }
        Ok(())
    }
}

fn check(limiter: &DefaultDirectRateLimiter, what: &str) -> Result<(), ApiError> {
    limiter.check().map_err(|not_until| {
        metrics::counter!("flowmesh_webhook_requests_limited_total").increment(1);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests {what}; retrying later is safe"),
        );
        error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_and_route_has_its_own_bucket() {
        let limits = WebhookLimits::new(WebhookLimitOptions {
            per_address: Some(5),
            per_route: Some(8),
        });
        let call = |source: &str, path: &'static str| WebhookCall {
            source: source.parse().unwrap(),
            tenant: "acme",
            method: "POST",
            path,
        };
        let admitted = (0..20)
            .filter(|_| limits.admit(&call("192.0.2.1", "a")).is_ok())
            .count();
        assert_eq!(admitted, 5, "one address's burst");
        // Another address reaches the same route until the route's share is spent.
        let more = (0..20)
            .filter(|_| limits.admit(&call("192.0.2.2", "a")).is_ok())
            .count();
        assert_eq!(more, 3, "the route's burst of 8, less the 5 already taken");
        assert!(
            limits.admit(&call("192.0.2.3", "b")).is_ok(),
            "another route"
        );
    }
}
