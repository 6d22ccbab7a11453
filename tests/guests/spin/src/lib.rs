//! `list(lock)` never returns: it computes forever (`mode = cpu`) or sleeps in a host call
//! (`mode = sleep`), which only a wall-clock limit ends.

use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Result};
use guest_common::{Mem, Twist};

struct Spin;

impl Twist for Spin {
    fn list_locks(config: &Config) -> Result<Vec<Entry>> {
        if config.get("mode") == Some("sleep") {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

cairn_sdk::export_storage!(Mem<Spin>);
