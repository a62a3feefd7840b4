//! Children kept by key and spawned on demand; shared by the root (tenants)
//! and tenant (workflows, sandboxes) actors, whose restart policy is the same.

use std::collections::HashMap;
use std::hash::Hash;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, SupervisionEvent,
};

pub(crate) struct Children<K, M> {
    by_key: HashMap<K, Child<M>>,
    by_actor: HashMap<ActorId, K>,
}

struct Child<M> {
    actor: ActorRef<M>,
    /// Messages sent to it through [`Children::send`] and
    /// [`Children::broadcast`], to tell whether one is still on its way
    /// when it reports itself idle (see `crate::idle`).
    sent: u64,
}

impl<K: Copy + Eq + Hash, M: ractor::Message> Children<K, M> {
    pub fn new() -> Self {
        Self {
            by_key: HashMap::new(),
            by_actor: HashMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
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
            return Ok(child.actor.clone());
        }
        let (handler, args) = make();
        let (actor, _) = A::spawn_linked(None, handler, args, supervisor.clone()).await?;
        self.by_actor.insert(actor.get_id(), key);
        self.by_key.insert(
            key,
            Child {
                actor: actor.clone(),
                sent: 0,
            },
        );
        Ok(actor)
    }

    /// Delivers `msg` to the child of `key`, spawned when needed. A child
    /// that ended before its supervision event arrived here refuses the
    /// message; it is forgotten and a fresh one gets the message instead.
    pub async fn send<A, F>(
        &mut self,
        key: K,
        supervisor: &ActorCell,
        make: F,
        msg: M,
    ) -> Result<(), ActorProcessingErr>
    where
        A: Actor<Msg = M>,
        F: Fn() -> (A, A::Arguments),
    {
        let mut msg = msg;
        let mut refused = false;
        loop {
            let actor = self.get_or_spawn(key, supervisor, &make).await?;
            match actor.cast(msg) {
                Ok(()) => {
                    if let Some(child) = self.by_key.get_mut(&key) {
                        child.sent += 1;
                    }
                    return Ok(());
                }
                Err(MessagingErr::SendErr(back)) if !refused => {
                    self.remove(&key);
                    msg = back;
                    refused = true;
                }
                Err(e) => return Err(format!("could not deliver to a child actor: {e}").into()),
            }
        }
    }

    pub fn broadcast(&mut self, msg: impl Fn() -> M) {
        for child in self.by_key.values_mut() {
            if child.actor.cast(msg()).is_ok() {
                child.sent += 1;
            }
        }
    }

    /// A child reported itself idle, having handled `handled` messages
    /// from here. When that is all that was sent to it, nothing is on its
    /// way: it is forgotten and returned, for the caller to stop. Otherwise
    /// it stays, busy again with what is still on its way.
    pub fn idle(&mut self, key: K, actor: ActorId, handled: u64) -> Option<ActorRef<M>> {
        let child = self.by_key.get(&key)?;
        if child.actor.get_id() != actor || child.sent != handled {
            return None;
        }
        self.remove(&key)
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
        self.by_actor.remove(&child.actor.get_id());
        Some(child.actor)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Counts what it receives.
    struct Counter;

    impl Actor for Counter {
        type Msg = ();
        type State = Arc<AtomicU64>;
        type Arguments = Arc<AtomicU64>;

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            seen: Arc<AtomicU64>,
        ) -> Result<Arc<AtomicU64>, ActorProcessingErr> {
            Ok(seen)
        }

        async fn handle(
            &self,
            _: ActorRef<()>,
            _: (),
            seen: &mut Arc<AtomicU64>,
        ) -> Result<(), ActorProcessingErr> {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A supervisor that does nothing; only a cell to link children to.
    struct Parent;

    impl Actor for Parent {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<()>,
            _: SupervisionEvent,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// Waits until `seen` counts `n`, failing the test after a deadline.
    async fn until_seen(seen: &AtomicU64, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        while seen.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "never delivered");
            tick.tick().await;
        }
    }

    /// Children of a fresh parent, counting what they receive in `seen`.
    struct Family {
        parent: ActorRef<()>,
        seen: Arc<AtomicU64>,
        children: Children<u8, ()>,
    }

    impl Family {
        async fn new() -> Self {
            let (parent, _) = Actor::spawn(None, Parent, ()).await.unwrap();
            Self {
                parent,
                seen: Arc::new(AtomicU64::new(0)),
                children: Children::new(),
            }
        }

        fn make(&self) -> impl Fn() -> (Counter, Arc<AtomicU64>) + use<> {
            let seen = self.seen.clone();
            move || (Counter, seen.clone())
        }

        /// The child of key 1, spawned when needed.
        async fn child(&mut self) -> ActorRef<()> {
            let (cell, make) = (self.parent.get_cell(), self.make());
            self.children.get_or_spawn(1, &cell, make).await.unwrap()
        }

        async fn send(&mut self) {
            let (cell, make) = (self.parent.get_cell(), self.make());
            self.children.send(1, &cell, make, ()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_idle_report_with_a_message_on_its_way_keeps_the_child() {
        let mut family = Family::new().await;
        family.send().await;
        let id = family.child().await.get_id();
        // A report of nothing handled while a message was sent keeps it.
        assert!(family.children.idle(1, id, 0).is_none(), "it is kept");
        assert!(!family.children.is_empty());
        until_seen(&family.seen, 1).await;
        // Once it reports everything sent, it is let go.
        let child = family.children.idle(1, id, 1).expect("released");
        assert!(family.children.is_empty());
        child.stop(None);
        family.parent.stop(None);
    }

    #[tokio::test]
    async fn a_report_of_a_replaced_child_changes_nothing() {
        let mut family = Family::new().await;
        let first = family.child().await;
        family.children.remove(&1);
        let second = family.child().await;
        assert!(family.children.idle(1, first.get_id(), 0).is_none());
        assert!(!family.children.is_empty(), "the new child stays");
        first.stop(None);
        second.stop(None);
        family.parent.stop(None);
    }

    #[tokio::test]
    async fn a_message_to_a_child_that_ended_reaches_a_fresh_one() {
        let mut family = Family::new().await;
        // Stopped behind the children's back: its supervision event has
        // not been handled here.
        let gone = family.child().await;
        gone.stop_and_wait(None, None).await.unwrap();
        family.send().await;
        until_seen(&family.seen, 1).await;
        family.parent.stop(None);
    }
}
