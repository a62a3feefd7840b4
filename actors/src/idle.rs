//! Stopping idle tenant and workflow actors without losing a message.
//!
//! A stopped ractor actor drops what is left in its mailbox, so a child
//! that stopped itself could lose a message its parent had just sent it
//! (a start whose caller then waits in vain). So a child never stops
//! itself; its parent, the only one that sends it messages, stops it:
//!
//! 1. The child counts the messages it handled from its parent, and notes
//!    when it last had something to do.
//! 2. After `--actor-idle-after` with nothing to do (no children, nothing
//!    handled), it tells its parent so, with that count.
//! 3. The parent compares the count with the messages it sent
//!    ([`crate::children::Children::idle`]). Equal: nothing is on its way,
//!    so the parent forgets the child and stops it; the next message for
//!    that key spawns a new child. Different: a message is on its way; the
//!    child stays, and handling that message starts its idle period again.
//!
//! The parent handles one message at a time and forgets the child before
//! stopping it, so nothing it sends can reach a stopping child.

use std::time::{Duration, Instant};

use ractor::{ActorRef, Message};

/// A child's side of the handshake.
pub(crate) struct Idleness {
    after: Duration,
    /// Messages handled from the parent.
    handled: u64,
    /// When the actor last had something to do.
    since: Instant,
    /// Whether a check is due (one at a time).
    armed: bool,
}

impl Idleness {
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            handled: 0,
            since: Instant::now(),
            armed: false,
        }
    }

    /// Counts a message from the parent: the actor has work.
    pub fn handled(&mut self) {
        self.handled += 1;
        self.since = Instant::now();
    }

    /// Something ended (an execution): the idle period starts now.
    pub fn touch(&mut self) {
        self.since = Instant::now();
    }

    /// Arms a check for when the idle period ends, if the actor has
    /// nothing to do and none is armed.
    pub fn arm<M: Message>(&mut self, myself: &ActorRef<M>, idle: bool, check: fn() -> M) {
        if idle && !self.armed {
            self.armed = true;
            myself.send_after(self.after.saturating_sub(self.since.elapsed()), check);
        }
    }

    /// At an armed check: the count to report when the actor has been
    /// idle long enough; otherwise `None`, armed again if still idle.
    pub fn check<M: Message>(
        &mut self,
        myself: &ActorRef<M>,
        idle: bool,
        check: fn() -> M,
    ) -> Option<u64> {
        self.armed = false;
        if idle && self.since.elapsed() >= self.after {
            return Some(self.handled);
        }
        self.arm(myself, idle, check);
        None
    }
}
