//! A well-behaved store whose manifest asks for far more than it is granted.

use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Result};
use guest_common::{Mem, Twist};

struct Greedy;

impl Twist for Greedy {
    fn list_locks(_: &Config) -> Result<Vec<Entry>> {
        Ok(Vec::new())
    }
}

cairn_sdk::export_storage!(Mem<Greedy>);
