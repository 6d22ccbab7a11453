//! A discovery plugin that answers one target with the path and identity its settings name,
//! whether or not they are inside what it was given: the host must refuse the bad ones.

use cairn_sdk::discovery::{Discovery, Target, VolumeKind};
use cairn_sdk::{Config, Result};

struct Liar;

impl Discovery for Liar {
    fn discover(config: Config, _inventory: Option<String>) -> Result<Vec<Target>> {
        Ok(vec![Target {
            identity: config.get("identity").unwrap_or("test/volume").to_owned(),
            app: "test".into(),
            path: config.require("answer")?.to_owned(),
            kind: VolumeKind::Other,
            labels: vec![],
        }])
    }
}

cairn_sdk::export_discovery!(Liar);
