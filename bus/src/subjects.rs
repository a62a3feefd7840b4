//! Every subject and stream flowmesh uses, named in one place.
//!
//! | stream | subjects | retention | read by |
//! | --- | --- | --- | --- |
//! | `{PREFIX}_CMD` | `{prefix}.cmd.{tenant}.{execution}` | work queue | the durable pull consumer `engine`, shared by every process: each command goes to one of them |
//! | `{PREFIX}_CTL` | `{prefix}.ctl.{tenant}.{execution}` | limits, 10 minutes | an ordered consumer per process, from the moment it subscribes: every process sees every control command |
//! | `{PREFIX}_EVT` | `{prefix}.evt.{tenant}.{execution}` | limits, `event_max_age` | ordered consumers per execution (replay from the start) and per tenant (new only) |
//!
//!
//! Public subjects, for tenants' own NATS clients (core NATS, no stream):
//!
//! | subject | direction | carries |
//! | --- | --- | --- |
//! | `{prefix}.trigger.{tenant-slug}.{subject}` | to flowmesh (queue group `{prefix}-triggers`: one process takes each) | a JSON payload that starts the published workflow whose `nats` trigger has that subject; a request gets a JSON reply |
//! | `{prefix}.events.{tenant-slug}.{execution}` | from flowmesh | each execution event as JSON, the same as the Server-Sent Events |
//! | `{prefix}.inbox.{tenant-slug}.>` | from flowmesh | replies to the tenant's trigger requests: its clients use `{prefix}.inbox.{tenant-slug}` as their inbox prefix; a request whose reply subject is elsewhere is refused and starts nothing |
//!
//! `{prefix}` is the configured prefix (default `flowmesh`); `{PREFIX}` its
//! upper-case form with `.` and `-` as `_`. Tenant and execution ids are
//! hyphenated UUIDs, which are valid subject tokens.

use flowmesh_model::{ExecutionId, TenantId};

/// Name of the durable consumer that shares start commands between processes.
pub const COMMAND_CONSUMER: &str = "engine";

#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn stream(&self, suffix: &str) -> String {
        let base: String = self
            .prefix
            .chars()
            .map(|c| {
                if c == '.' || c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        format!("{base}_{suffix}")
    }

    pub fn command_stream(&self) -> String {
        self.stream("CMD")
    }

    pub fn control_stream(&self) -> String {
        self.stream("CTL")
    }

    pub fn event_stream(&self) -> String {
        self.stream("EVT")
    }

    pub fn command(&self, tenant: TenantId, execution: ExecutionId) -> String {
        format!("{}.cmd.{tenant}.{execution}", self.prefix)
    }

    pub fn control(&self, tenant: TenantId, execution: ExecutionId) -> String {
        format!("{}.ctl.{tenant}.{execution}", self.prefix)
    }

    pub fn event(&self, tenant: TenantId, execution: ExecutionId) -> String {
        format!("{}.evt.{tenant}.{execution}", self.prefix)
    }

    pub fn tenant_events(&self, tenant: TenantId) -> String {
        format!("{}.evt.{tenant}.*", self.prefix)
    }

    /// Every public trigger subject.
    pub fn triggers(&self) -> String {
        format!("{}.trigger.>", self.prefix)
    }

    /// The queue group that shares trigger messages between processes.
    pub fn trigger_group(&self) -> String {
        format!("{}-triggers", self.prefix)
    }

    /// `(tenant slug, subject)` of a public trigger subject.
    pub fn parse_trigger<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".trigger.")?;
        let (slug, subject) = rest.split_once('.')?;
        (!slug.is_empty() && !subject.is_empty()).then_some((slug, subject))
    }

    /// Where an execution's events go out as JSON for the tenant's clients.
    pub fn public_event(&self, tenant_slug: &str, execution: ExecutionId) -> String {
        format!("{}.events.{tenant_slug}.{execution}", self.prefix)
    }

    /// The inbox prefix of a tenant's clients: the only place the engine
    /// sends the tenant's replies.
    pub fn inbox(&self, tenant_slug: &str) -> String {
        format!("{}.inbox.{tenant_slug}", self.prefix)
    }

    /// Whether `reply` is a subject under the tenant's inbox prefix.
    pub fn in_inbox(&self, tenant_slug: &str, reply: &str) -> bool {
        reply
            .strip_prefix(self.inbox(tenant_slug).as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| {
                rest.split('.')
                    .all(|t| !t.is_empty() && t != "*" && t != ">")
            })
    }

    /// The wildcard of a stream's subjects: `{prefix}.{kind}.>`.
    pub fn all(&self, kind: &str) -> String {
        format!("{}.{kind}.>", self.prefix)
    }

    /// Whether a prefix can be used: subject tokens, no wildcards or spaces.
    pub fn valid_prefix(prefix: &str) -> bool {
        !prefix.is_empty()
            && prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let s = Subjects::new("it-1.a");
        assert_eq!(s.command_stream(), "IT_1_A_CMD");
        let (t, e) = (TenantId::new(), ExecutionId::new());
        assert_eq!(s.command(t, e), format!("it-1.a.cmd.{t}.{e}"));
        assert_eq!(
            s.parse_trigger("it-1.a.trigger.acme.orders.created"),
            Some(("acme", "orders.created"))
        );
        assert_eq!(s.parse_trigger("it-1.a.trigger.acme"), None);
        assert_eq!(s.parse_trigger("other.trigger.acme.x"), None);
        assert_eq!(s.public_event("acme", e), format!("it-1.a.events.acme.{e}"));
        assert!(s.in_inbox("acme", "it-1.a.inbox.acme.Zx1.7"));
        assert!(!s.in_inbox("acme", "it-1.a.inbox.acme"));
        assert!(!s.in_inbox("acme", "it-1.a.inbox.acme-corp.x"));
        assert!(!s.in_inbox("acme", "it-1.a.inbox.globex.x"));
        assert!(!s.in_inbox("acme", "it-1.a.inbox.acme..x"));
        assert!(!s.in_inbox("acme", "it-1.a.events.acme.x"));
        assert!(!s.in_inbox("acme", "_INBOX.x"));
        assert!(Subjects::valid_prefix("flowmesh"));
        assert!(!Subjects::valid_prefix("a.*"));
        assert!(!Subjects::valid_prefix("a b"));
        assert!(!Subjects::valid_prefix(""));
    }
}
