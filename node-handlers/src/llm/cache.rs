//! Answers to identical deterministic requests, per tenant, for a while.

use std::time::Duration;

use flowmesh_model::TenantId;
use sha2::{Digest, Sha256};

use super::{ChatRequest, Completion, Endpoint};

pub type Key = [u8; 32];

/// The tenant, the endpoint (key included, so a new key is a new entry)
/// and the whole request.
pub fn key(tenant: TenantId, endpoint: &Endpoint, request: &ChatRequest) -> Key {
    let mut hash = Sha256::new();
    for part in [
        tenant.to_string().as_bytes(),
        endpoint.base_url.as_bytes(),
        endpoint.model.as_bytes(),
        endpoint.api_key.as_deref().unwrap_or_default().as_bytes(),
        serde_json::to_string(request)
            .unwrap_or_default()
            .as_bytes(),
        serde_json::to_string(&request.schema)
            .unwrap_or_default()
            .as_bytes(),
        &[u8::from(request.stream)],
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

#[derive(Clone)]
pub struct Cache(Option<moka::sync::Cache<Key, Completion>>);

impl Cache {
    pub fn new(ttl: Duration, entries: u64) -> Self {
        Cache((!ttl.is_zero() && entries > 0).then(|| {
            moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(entries)
                .build()
        }))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn get(&self, key: &Key) -> Option<Completion> {
        self.0.as_ref()?.get(key)
    }

    pub fn put(&self, key: Key, completion: Completion) {
        if let Some(cache) = &self.0 {
            cache.insert(key, completion);
        }
    }

    /// Drops expired answers: moka drops them only while the cache is
    /// used, and after a burst of calls nothing may use it.
    pub fn sweep(&self) {
        if let Some(cache) = &self.0 {
            cache.run_pending_tasks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_answers_are_swept() {
        let cache = Cache::new(Duration::from_millis(20), 100);
        for n in 0..10u8 {
            let completion = Completion {
                content: "an answer".into(),
                model: "m".into(),
                usage: Default::default(),
                cached: false,
            };
            cache.put([n; 32], completion);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            cache.sweep();
            let left = cache.0.as_ref().map_or(0, |c| c.entry_count());
            if left == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{left} answers kept");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
