//! The cluster this node belongs to, when the agent watches its API (`[agent.kubernetes]`):
//! each backup's discovery gets the inventory of this node's pods and the claims they mount.

use std::time::Duration;

use cairn_apps::{Discovery, Inventory};
use cairn_kubernetes::NodeWatch;
use cairn_repo::Result;

use crate::settings::KubernetesSettings;

/// The watches on the API, and how long a run waits for their first lists.
#[derive(Debug)]
pub struct Cluster {
    watch: NodeWatch,
    wait: Duration,
}

impl Cluster {
    /// Starts watching the API `settings` name.
    ///
    /// # Errors
    /// When the node's name is unknown, `wait` is not a duration or the kubeconfig is wrong.
    pub fn start(settings: &KubernetesSettings) -> Result<Cluster> {
        let wait = settings.wait()?;
        let watch = NodeWatch::start(&settings.options())?;
        tracing::info!(node = watch.node(), "watching the Kubernetes API");
        Ok(Cluster { watch, wait })
    }

    /// What a backup's discovery runs over: the inventory as the API last said it.
    ///
    /// # Errors
    /// When the API has not listed this node's pods since the agent started.
    pub fn discovery(&self) -> Result<Discovery> {
        Ok(Discovery {
            inventory: Some(Inventory::Json(self.watch.inventory(self.wait)?)),
            ..Discovery::default()
        })
    }
}
