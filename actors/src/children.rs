//! Children kept by key and spawned on demand; shared by the root (tenants)
//! and tenant (workflows, sandboxes) actors, whose restart policy is the same.

use std::collections::HashMap;
use std::hash::Hash;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

pub(crate) struct Children<K, M> {
    by_key: HashMap<K, ActorRef<M>>,
    by_actor: HashMap<ActorId, K>,
}

impl<K: Copy + Eq + Hash, M: ractor::Message> Children<K, M> {
    pub fn new(by_key: HashMap<K, ActorRef<M>>) -> Self {
        Self {
            by_key,
            by_actor: HashMap::new(),
        }
    }

    pub async fn get_or_spawn<A, F>(
        &mut self,
        key: K,
        supervisor: &ActorCell,
        make: F,
    ) -> Result<ActorRef<M>, ActorProcessingErr>
    where
        A: Actor<Msg = M>,
        F: FnOnce() -> (A, A::Arguments),
    {
        if let Some(child) = self.by_key.get(&key) {
            return Ok(child.clone());
        }
        let (handler, args) = make();
        let (child, _) = A::spawn_linked(None, handler, args, supervisor.clone()).await?;
        self.by_actor.insert(child.get_id(), key);
        self.by_key.insert(key, child.clone());
        Ok(child)
    }

    pub fn broadcast(&self, msg: impl Fn() -> M) {
        for child in self.by_key.values() {
            let _ = child.cast(msg());
        }
    }

    /// Forgets a child that ended (the next message spawns it again).
    /// Returns its key when it was one of these children, with the error
    /// when it failed.
    pub fn on_supervision(&mut self, event: &SupervisionEvent) -> Option<(K, Option<String>)> {
        let (cell, error) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, error) => (cell, Some(error.to_string())),
            _ => return None,
        };
        let key = self.by_actor.remove(&cell.get_id())?;
        self.by_key.remove(&key);
        Some((key, error))
    }

    /// Forgets a child at once (it is being stopped), returning it.
    pub fn remove(&mut self, key: &K) -> Option<ActorRef<M>> {
        let child = self.by_key.remove(key)?;
        self.by_actor.remove(&child.get_id());
        Some(child)
    }
}
