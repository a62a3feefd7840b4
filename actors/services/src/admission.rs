//! Admission: what a tenant may still send. Request rate (a GCRA token
//! bucket per tenant and process), payload size, and credits.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_model::TenantId;
use flowmesh_store::{Created, NewExecution};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::api::EngineHandle;
use crate::cache::{Bound, Cache};
use crate::error::Error;

type Limiter = Arc<DefaultDirectRateLimiter>;

/// Most tenants whose bucket or balance is kept.
const TENANTS_KEPT: u64 = 100_000;

/// One bucket per tenant, rebuilt when its rate changes.
pub(crate) struct RateLimits(pub(super) Cache<TenantId, (u32, Limiter)>);

impl RateLimits {
    /// Buckets unused for `idle` are forgotten, but never sooner than a
    /// second: a bucket holds at most a second's worth, so one unused that
    /// long is full, as a new one would be.
    pub fn new(idle: Duration) -> Self {
        Self(
            Bound {
                entries: TENANTS_KEPT,
                live: None,
                idle: Some(idle.max(Duration::from_secs(1))),
            }
            .build(),
        )
    }

    fn limiter(&self, tenant: TenantId, per_second: u32) -> Limiter {
        let (rate, limiter) = self.0.get_with(tenant, || (per_second, bucket(per_second)));
        if rate == per_second {
            return limiter;
        }
        let limiter = bucket(per_second);
        self.0.insert(tenant, (per_second, limiter.clone()));
        limiter
    }
}

fn bucket(per_second: u32) -> Limiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    // A tenth of a second's worth at once, and at least 5 calls, as README
    // documents: a larger burst lets a flooding tenant drop a wave of
    // starts on the engine at once, which the fairness benchmark showed as
    // a stall of every tenant.
    let burst = NonZeroU32::new((per_second / 10).max(5)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Balances read recently: a start needs no store round trip to know a
/// tenant still has credits.
pub(crate) struct CreditCache(pub(super) Cache<TenantId, i64>);

/// How long a balance read is used for admission.
const CREDIT_TTL: Duration = Duration::from_secs(1);
/// Balances below this are read afresh for every start, so that a tenant
/// running out stops within a few executions, not a second's worth.
const CREDIT_MARGIN: i64 = 10_000;

impl Default for CreditCache {
    fn default() -> Self {
        Self(
            Bound {
                entries: TENANTS_KEPT,
                live: Some(CREDIT_TTL),
                idle: None,
            }
            .build(),
        )
    }
}

impl CreditCache {
    fn get(&self, tenant: TenantId) -> Option<i64> {
        self.0.get(&tenant)
    }

    fn put(&self, tenant: TenantId, balance: i64) {
        self.0.insert(tenant, balance);
    }

    pub(crate) fn forget(&self, tenant: TenantId) {
        self.0.invalidate(&tenant);
    }
}

impl EngineHandle {
    /// Counts one request of a tenant against its rate limit.
    pub async fn admit(&self, tenant: TenantId) -> Result<(), Error> {
        let settings = self.shared.settings.get(tenant).await;
        let Some(rate) =
            settings
                .limits
                .rate_limit
                .or(self.shared.options.tenancy.limits.rate_limit)
        else {
            return Ok(());
        };
        let limiter = self
            .limits
            .limiter(tenant, u32::try_from(rate).unwrap_or(u32::MAX));
        limiter.check().map_err(|not_until| {
            crate::metrics::rate_limited(tenant);
            Error::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }

    /// Admits, then records, a new execution that runs wherever it is
    /// claimed (a re-run; `accept` admits its own, to claim them here).
    pub(super) async fn create_admitted(
        &self,
        new: &NewExecution,
        payload_bytes: usize,
    ) -> Result<Created, Error> {
        self.admit_start(new.tenant, payload_bytes).await?;
        Ok(self.shared.store.create_execution(new).await?)
    }

    /// Whether a tenant may start an execution with `payload_bytes` of
    /// caller-given data: within its size limit, with credits left. The one
    /// admission of every execution, whatever starts it.
    pub(super) async fn admit_start(
        &self,
        tenant: TenantId,
        payload_bytes: usize,
    ) -> Result<(), Error> {
        let settings = self.shared.settings.get(tenant).await;
        if let Some(max) = settings.limits.max_payload_bytes.or(self
            .shared
            .options
            .tenancy
            .limits
            .max_payload_bytes)
            && payload_bytes as i64 > max
        {
            return Err(Error::TooLarge(format!(
                "the execution's input is {payload_bytes} bytes; this tenant's limit is {max}. \
                 Retrying with the same input will not help"
            )));
        }
        let balance = match self.credits.get(tenant) {
            Some(balance) => balance,
            None => {
                let balance = self.shared.store.balance(tenant).await?.balance;
                if balance > CREDIT_MARGIN {
                    self.credits.put(tenant, balance);
                }
                balance
            }
        };
        if balance <= 0 {
            return Err(Error::NoCredits(format!(
                "the tenant has no credits left (balance {balance}); nothing was started. \
                 Executions already running finish; add credits to start new ones"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    /// README: the bucket holds a tenth of a second's worth, at least 5.
    #[test]
    fn a_bucket_holds_a_tenth_of_a_second_and_at_least_five() {
        for (rate, burst) in [(1, 5), (2, 5), (50, 5), (100, 10), (1_000, 100)] {
            let limiter = bucket(rate);
            let admitted = (0..burst * 2)
                .take_while(|_| limiter.check().is_ok())
                .count();
            assert_eq!(admitted, burst as usize, "rate {rate}/s");
        }
    }
}
