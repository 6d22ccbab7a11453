//! `list(lock)` panics; a ranged read answers one byte short (garbage the host must catch).

use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Result};
use guest_common::{Mem, Twist};

struct Crash;

impl Twist for Crash {
    fn list_locks(_: &Config) -> Result<Vec<Entry>> {
        panic!("boom: this guest panics on purpose");
    }

    fn ranged(mut data: Vec<u8>) -> Vec<u8> {
        data.pop();
        data
    }
}

cairn_sdk::export_storage!(Mem<Crash>);
