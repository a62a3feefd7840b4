//! Process roles (each flag has a matching environment variable): which
//! part of the engine one process runs, and the listeners it serves.

use std::net::SocketAddr;

use anyhow::bail;
use clap::ValueEnum;
use flowmesh_gateway::{Gateway, Surface};
use flowmesh_services::{EngineHandle, ProcessRole};

#[derive(clap::Args, Debug)]
pub struct RoleArgs {
    /// What this process runs: all (the API and the executions; the only
    /// role of an embedded process), gateway (the HTTP API and NATS
    /// triggers; runs no executions) or worker (executions, their sandboxes
    /// and the loops that keep time; no API). Gateways and workers need
    /// NATS and PostgreSQL.
    #[arg(long, env = "FLOWMESH_ROLE", value_enum, default_value = "all")]
    pub role: RoleArg,

    /// Serve /health, /ready and /metrics on this address instead of the
    /// API's. A worker, which has no API, serves them on --listen when
    /// this is unset.
    #[arg(long, env = "FLOWMESH_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    All,
    Gateway,
    Worker,
}

impl RoleArgs {
    pub fn role(&self) -> ProcessRole {
        match self.role {
            RoleArg::All => ProcessRole::All,
            RoleArg::Gateway => ProcessRole::Gateway,
            RoleArg::Worker => ProcessRole::Worker,
        }
    }

    /// Refuses a split role without NATS, the only way gateways and
    /// workers meet (that NATS comes with a shared store is checked for
    /// every role), and an operations listener on the API's own address.
    pub fn check(&self, nats: bool, listen: SocketAddr) -> anyhow::Result<()> {
        let role = self.role();
        if role != ProcessRole::All && !nats {
            bail!(
                "--role {} needs --nats-url (FLOWMESH_NATS_URL): without NATS the bus is \
                 in-process, and an embedded process runs every role (--role all)",
                role.name()
            );
        }
        // Port 0 asks the system for a free port: two of those never collide.
        if role.serves_requests() && listen.port() != 0 && self.ops_listen == Some(listen) {
            bail!(
                "--ops-listen {listen} is also --listen: the operations listener needs an \
                 address of its own (or leave --ops-listen unset to serve /health, /ready \
                 and /metrics on the API's)"
            );
        }
        Ok(())
    }
}

/// The listeners of one process: its API (all, gateway) and its
/// operations listener (always for a worker, otherwise with --ops-listen).
pub struct Listeners(Vec<(Surface, Gateway)>);

impl Listeners {
    /// Binds what the role serves; `options` are those of the API.
    pub async fn bind(
        args: &RoleArgs,
        options: flowmesh_gateway::Options,
        engine: EngineHandle,
    ) -> anyhow::Result<Listeners> {
        let role = args.role();
        let mut bound = Vec::new();
        if role.serves_requests() {
            let surface = match args.ops_listen {
                Some(_) => Surface::Public,
                None => Surface::All,
            };
            let api = flowmesh_gateway::Options {
                surface,
                ..options.clone()
            };
            bound.push((surface, Gateway::bind(&api, engine.clone()).await?));
        }
        let ops_listen = match (args.ops_listen, role) {
            (Some(addr), _) => Some(addr),
            (None, ProcessRole::Worker) => Some(options.listen),
            (None, _) => None,
        };
        if let Some(listen) = ops_listen {
            let ops = flowmesh_gateway::Options {
                listen,
                surface: Surface::Operations,
                ..options
            };
            bound.push((Surface::Operations, Gateway::bind(&ops, engine).await?));
        }
        Ok(Listeners(bound))
    }

    /// Says where this process listens: in the log, and on stdout so that
    /// scripts (and tests, which pass port 0) can find the ports.
    pub fn announce(&self, role: ProcessRole, node_id: &str, transport: &str) {
        for (surface, listener) in &self.0 {
            let Some(addr) = listener.local_addr() else {
                continue;
            };
            if *surface == Surface::Operations {
                println!("ops listening on http://{addr}");
            } else {
                println!("listening on http://{addr}");
            }
        }
        let addrs: Vec<String> = self
            .0
            .iter()
            .filter_map(|(_, l)| l.local_addr().map(|a| a.to_string()))
            .collect();
        tracing::info!(
            role = role.name(),
            addrs = addrs.join(" "),
            node_id,
            transport,
            "flowmesh is listening"
        );
    }

    /// Serves every listener until `shutdown`, then lets the requests in
    /// progress finish on each.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let mut tasks = tokio::task::JoinSet::new();
        for (_, listener) in self.0 {
            let mut stopped = stopped.clone();
            tasks.spawn(listener.serve(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }));
        }
        while let Some(served) = tasks.join_next().await {
            served??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

    fn args(role: RoleArg) -> RoleArgs {
        RoleArgs {
            role,
            ops_listen: None,
        }
    }

    #[test]
    fn split_roles_need_nats() {
        for role in [RoleArg::Gateway, RoleArg::Worker] {
            let refused = args(role).check(false, LISTEN).unwrap_err().to_string();
            assert!(refused.contains("--nats-url"), "{refused}");
            assert!(refused.contains("--role all"), "{refused}");
            args(role).check(true, LISTEN).unwrap();
        }
        args(RoleArg::All).check(false, LISTEN).unwrap();
    }

    #[test]
    fn the_operations_listener_needs_an_address_of_its_own() {
        for role in [RoleArg::All, RoleArg::Gateway] {
            let same = RoleArgs {
                ops_listen: Some(LISTEN),
                ..args(role)
            };
            let refused = same.check(true, LISTEN).unwrap_err().to_string();
            assert!(refused.contains("--ops-listen"), "{refused}");
        }
        // A worker has no API: its operations listener may take --listen's address.
        let worker = RoleArgs {
            ops_listen: Some(LISTEN),
            ..args(RoleArg::Worker)
        };
        worker.check(true, LISTEN).unwrap();
    }
}
