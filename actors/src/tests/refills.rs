//! Automatic refills through a payment provider that fails, as real ones
//! sometimes do: paying the same refill again must be the same payment.

use std::sync::Mutex;

use flowmesh_api::{Receipt, RefillRequest};
use flowmesh_services::PaymentProvider;

use super::*;

/// Refuses its first payment (as if the answer were lost) and accepts the
/// others; keeps every idempotency key it was sent.
#[derive(Default)]
struct FlakyProvider {
    keys: Mutex<Vec<String>>,
}

impl PaymentProvider for FlakyProvider {
    fn refill(&self, request: RefillRequest) -> BoxFuture<'_, Result<Receipt, String>> {
        Box::pin(async move {
            let mut keys = self.keys.lock().unwrap();
            keys.push(request.idempotency_key.clone());
            if keys.len() == 1 {
                return Err("the provider's answer was lost".into());
            }
            Ok(Receipt {
                id: format!("receipt-{}", keys.len()),
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_paid_again_after_a_failure_sends_the_same_key() {
    let provider = Arc::new(FlakyProvider::default());
    let options = Settings {
        services: flowmesh_services::Options {
            tenancy: flowmesh_services::Tenancy {
                settle_interval: flowmesh_model::HumanDuration::from_millis(20),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Settings::default()
    };
    let h = harness_from(
        |registry, _| Arc::new(PanickyRunner(registry)),
        provider.clone(),
        options,
    )
    .await;
    // Always below the threshold: each settlement wants a refill.
    h.handle
        .set_auto_refill(h.tenant, Some((1_000_000_000, 7)))
        .await
        .unwrap();
    let workflow = h.deploy(waiting_workflow("1ms")).await;
    let keys = h
        .until("three payments tried", async || {
            // Usage to settle, and so a settlement that looks at refills.
            h.finished(h.start(workflow).await).await;
            let keys = provider.keys.lock().unwrap().clone();
            (keys.len() >= 3).then_some(keys)
        })
        .await;
    assert_eq!(
        keys[0], keys[1],
        "the failed refill was tried again as itself"
    );
    assert_ne!(keys[1], keys[2], "once paid, the next refill is a new one");
    let ledger = h.store.ledger(h.tenant, 100, None).await.unwrap();
    let paid: Vec<_> = ledger.iter().filter(|e| e.kind == "refill").collect();
    assert!(!paid.is_empty(), "the refill was recorded");
    assert_eq!(
        paid.iter()
            .filter(|e| e.note.as_deref().is_some_and(|n| n.ends_with("receipt-2")))
            .count(),
        1,
        "{paid:?}"
    );
    h.engine.unwrap().shutdown().await;
}
