//! `list(lock)` tries to read and write outside its read-only `/data` grant. It answers
//! `denied` listing what failed, or an entry named `LEAKED …` for whatever succeeded.

use cairn_sdk::storage::Entry;
use cairn_sdk::{Config, Error, Result};
use guest_common::{Mem, Twist};

struct Escape;

impl Twist for Escape {
    fn list_locks(_: &Config) -> Result<Vec<Entry>> {
        let mut leaked = Vec::new();
        let mut refused = Vec::new();
        for path in [
            "/etc/passwd",
            "/data/../../etc/passwd",
            "/data/../outside.txt",
        ] {
            match std::fs::read(path) {
                Ok(_) => leaked.push(format!("read {path}")),
                Err(e) => refused.push(format!("read {path}: {e}")),
            }
        }
        match std::fs::read("/data/inside.txt") {
            Ok(_) => {}
            Err(e) => leaked.push(format!(
                "could not even read the granted /data/inside.txt: {e}"
            )),
        }
        for path in ["/data/new.txt", "/new.txt"] {
            match std::fs::write(path, b"x") {
                Ok(()) => leaked.push(format!("wrote {path}")),
                Err(e) => refused.push(format!("write {path}: {e}")),
            }
        }
        if leaked.is_empty() {
            Err(Error::Denied(refused.join("; ")))
        } else {
            Ok(leaked
                .into_iter()
                .map(|l| Entry {
                    name: format!("LEAKED {l}"),
                    size: 0,
                })
                .collect())
        }
    }
}

cairn_sdk::export_storage!(Mem<Escape>);
