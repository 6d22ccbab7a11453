//! `list(lock)` allocates (and touches) 16 MiB after 16 MiB until something stops it.

use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Result};
use guest_common::{Mem, Twist};

struct Hog;

impl Twist for Hog {
    fn list_locks(_: &Config) -> Result<Vec<Entry>> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xa5; 16 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

cairn_sdk::export_storage!(Mem<Hog>);
