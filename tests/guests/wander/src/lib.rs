//! `list(lock)` sends a request to the URL in `other` (not granted) and passes on the error;
//! an answer would come back as an entry named `REACHED`.

use cairn_sdk::http::{self, Url};
use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Result};
use guest_common::{Mem, Twist};

struct Wander;

impl Twist for Wander {
    fn list_locks(config: &Config) -> Result<Vec<Entry>> {
        let url = Url::parse(config.require("other")?)?;
        let response = http::send("GET", &url, &[], &[])?;
        Ok(vec![Entry {
            name: format!("REACHED {}", response.status),
            size: 0,
        }])
    }
}

cairn_sdk::export_storage!(Mem<Wander>);
