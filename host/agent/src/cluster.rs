//! The cluster this node belongs to, when the agent watches its API (`[agent.kubernetes]` or
//! `[agent.nomad]`): each backup's discovery gets the inventory of this node's pods and the
//! claims they mount, or of its allocations.

use std::time::Duration;

use cairn_apps::{Discovery, Inventory};
use cairn_kubernetes::NodeWatch;
use cairn_nomad::AllocWatch;
use cairn_repo::{Error, Result};

use crate::settings::AgentSettings;

/// What is watched.
#[derive(Debug)]
enum Watch {
    Kubernetes(NodeWatch),
    Nomad(AllocWatch),
}

/// The watch on the API, and how long a run waits for its first lists.
#[derive(Debug)]
pub struct Cluster {
    watch: Watch,
    wait: Duration,
}

impl Cluster {
    /// Starts watching the API the `[agent]` table names, if it names one.
    ///
    /// # Errors
    /// When both are named, the node's name is unknown, a `wait` is not a duration, or the
    /// kubeconfig or token file is wrong.
    pub fn start(settings: &AgentSettings) -> Result<Option<Cluster>> {
        match (&settings.kubernetes, &settings.nomad) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "[agent.kubernetes] and [agent.nomad] are both set: a node is in one cluster",
            )),
            (Some(k), None) => {
                let wait = k.wait()?;
                let watch = NodeWatch::start(&k.options())?;
                tracing::info!(node = watch.node(), "watching the Kubernetes API");
                Ok(Some(Cluster {
                    watch: Watch::Kubernetes(watch),
                    wait,
                }))
            }
            (None, Some(n)) => {
                let wait = n.wait()?;
                let watch = AllocWatch::start(&n.options()?)?;
                tracing::info!("watching the Nomad agent's allocations");
                Ok(Some(Cluster {
                    watch: Watch::Nomad(watch),
                    wait,
                }))
            }
            (None, None) => Ok(None),
        }
    }

    /// What a backup's discovery runs over: the inventory as the API last said it.
    ///
    /// # Errors
    /// When the API has not listed this node's pods or allocations since the agent started.
    pub fn discovery(&self) -> Result<Discovery> {
        let inventory = match &self.watch {
            Watch::Kubernetes(w) => w.inventory(self.wait)?,
            Watch::Nomad(w) => w.inventory(self.wait)?,
        };
        Ok(Discovery {
            inventory: Some(Inventory::Json(inventory)),
            ..Discovery::default()
        })
    }
}
