//! The directories above the snapshots' own trees: `snapshots/<time>/`, `ids/<short id>/`,
//! `hosts/<host>/<time>/`, `tags/<tag>/<time>/`, `apps/<app>/<time>/` and
//! `volumes/<identity>/<time>/`, each list with a `latest` link to its newest snapshot (as
//! restic's mount). App names and volume identities with `/` make nested directories.
//!
//! Everything here comes from snapshot objects (which whoever holds the password may craft),
//! so every name is made a single safe path component: no `/`, no NUL, never `.` or `..`,
//! at most 255 bytes, and clashes get `-1`, `-2` … appended.

use std::collections::BTreeMap;

use cairn_repo::{Id, Snapshot};

/// A directory of the layout.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dir {
    /// Its entries by name.
    pub entries: BTreeMap<String, Entry>,
}

/// An entry of a layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory of the layout.
    Dir(Dir),
    /// A snapshot: its id, root tree and time (ns since the epoch).
    Snapshot {
        /// The snapshot's id.
        id: Id,
        /// Its root tree.
        tree: Id,
        /// When it was taken (ns since the epoch).
        time: i64,
    },
    /// A symbolic link (`latest`) to a sibling.
    Link(String),
}

/// The longest name a component may have (Linux's NAME_MAX).
const NAME_MAX: usize = 255;

/// `raw` as one safe path component.
pub fn component(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        s = format!("_{s}");
    }
    while s.len() > NAME_MAX {
        s.pop();
    }
    s
}

/// The snapshot's directory name: its time in the local time zone, to the second, with the
/// offset (`2026-03-01T01:00:00+00:00`).
pub fn time_name(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

impl Dir {
    /// The directory at `path` below this one (made as needed); `None` when a component is
    /// taken by something that is not a directory.
    fn dir_at(&mut self, path: &[String]) -> Option<&mut Dir> {
        let mut dir = self;
        for part in path {
            let entry = dir
                .entries
                .entry(part.clone())
                .or_insert_with(|| Entry::Dir(Dir::default()));
            dir = match entry {
                Entry::Dir(d) => d,
                _ => return None,
            };
        }
        Some(dir)
    }

    /// Adds snapshot `id` under `name`, `-1`, `-2` … appended while the name is taken.
    fn add_snapshot(&mut self, name: &str, id: Id, snap: &Snapshot) {
        let mut unique = name.to_owned();
        let mut n = 0;
        while self.entries.contains_key(&unique) || unique == "latest" {
            n += 1;
            unique = format!("{name}-{n}");
        }
        self.entries.insert(
            unique,
            Entry::Snapshot {
                id,
                tree: snap.tree,
                time: i64::try_from(snap.time.as_nanosecond()).unwrap_or(i64::MAX),
            },
        );
    }

    /// Gives every directory holding snapshots a `latest` link to the newest one.
    fn link_latest(&mut self) {
        let newest = self
            .entries
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Snapshot { time, .. } => Some((*time, name.clone())),
                _ => None,
            })
            .max();
        for e in self.entries.values_mut() {
            if let Entry::Dir(d) = e {
                d.link_latest();
            }
        }
        // (A nested directory named `latest` keeps its name; the list then has no link.)
        if let Some((_, name)) = newest {
            self.entries
                .entry("latest".into())
                .or_insert(Entry::Link(name));
        }
    }
}

/// The layout of `snapshots` (oldest first, as listed).
pub fn layout(snapshots: &[(Id, Snapshot)]) -> Dir {
    let mut root = Dir::default();
    for top in ["snapshots", "ids", "hosts", "tags", "apps", "volumes"] {
        root.entries.insert(top.into(), Entry::Dir(Dir::default()));
    }
    // An app or volume name nests at most this deep; the rest is one name.
    const MAX_NESTING: usize = 8;
    let nested = |s: &str| -> Vec<String> {
        let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        let mut out: Vec<String> = parts
            .iter()
            .take(MAX_NESTING - 1)
            .map(|p| component(p))
            .collect();
        if parts.len() >= MAX_NESTING {
            out.push(component(&parts[MAX_NESTING - 1..].join("_")));
        }
        out
    };
    for (id, snap) in snapshots {
        let name = time_name(snap.time);
        let mut places: Vec<Vec<String>> = vec![
            vec!["snapshots".into()],
            vec!["hosts".into(), component(&snap.hostname)],
        ];
        for tag in &snap.tags {
            places.push(vec!["tags".into(), component(tag)]);
        }
        if let Some(app) = &snap.app {
            let mut p = vec!["apps".to_owned()];
            p.extend(nested(app));
            places.push(p);
        }
        if let Some(volume) = &snap.volume {
            let mut p = vec!["volumes".to_owned()];
            p.extend(nested(volume));
            places.push(p);
        }
        for place in places {
            if let Some(dir) = root.dir_at(&place) {
                dir.add_snapshot(&name, *id, snap);
            }
        }
        if let Some(ids) = root.dir_at(&["ids".to_owned()]) {
            ids.add_snapshot(&id.short(), *id, snap);
        }
    }
    for top in ["snapshots", "hosts", "tags", "apps", "volumes"] {
        if let Some(Entry::Dir(d)) = root.entries.get_mut(top) {
            d.link_latest();
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(
        time: &str,
        host: &str,
        tags: &[&str],
        app: Option<&str>,
        volume: Option<&str>,
    ) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "time": time, "hostname": host, "username": "u", "uid": 0, "gid": 0,
            "paths": ["/x"], "tree": Id([1; 32]).to_hex(), "program_version": "t",
        }))
        .unwrap();
        s.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        s.app = app.map(str::to_owned);
        s.volume = volume.map(str::to_owned);
        s
    }

    fn dir<'a>(d: &'a Dir, path: &[&str]) -> &'a Dir {
        let mut d = d;
        for p in path {
            d = match d.entries.get(*p) {
                Some(Entry::Dir(x)) => x,
                other => panic!("{p}: {other:?}"),
            };
        }
        d
    }

    #[test]
    fn every_list_with_its_latest_link_and_names_made_safe() {
        let snaps = vec![
            (
                Id([1; 32]),
                snap(
                    "2026-03-01T01:00:00Z",
                    "web",
                    &["daily"],
                    Some("shop/db"),
                    None,
                ),
            ),
            (
                Id([2; 32]),
                snap(
                    "2026-03-01T01:00:00Z",
                    "../etc",
                    &["a/b", ".."],
                    None,
                    Some("k8s/ns/pod/vol"),
                ),
            ),
            (
                Id([3; 32]),
                snap("2026-03-02T01:00:00Z", "web", &["daily"], None, None),
            ),
        ];
        let root = layout(&snaps);
        let names: Vec<&String> = dir(&root, &[]).entries.keys().collect();
        assert_eq!(
            names,
            ["apps", "hosts", "ids", "snapshots", "tags", "volumes"]
        );
        let all = dir(&root, &["snapshots"]);
        assert_eq!(all.entries.len(), 4, "three snapshots and latest: {all:?}");
        let first = time_name("2026-03-01T01:00:00Z".parse().unwrap());
        assert!(all.entries.contains_key(&first));
        assert!(
            all.entries.contains_key(&format!("{first}-1")),
            "a clash is numbered"
        );
        let last = time_name("2026-03-02T01:00:00Z".parse().unwrap());
        assert_eq!(all.entries.get("latest"), Some(&Entry::Link(last.clone())));
        assert_eq!(dir(&root, &["hosts", "web"]).entries.len(), 3);
        assert!(
            dir(&root, &["hosts"]).entries.contains_key(".._etc"),
            "{:?}",
            dir(&root, &["hosts"])
        );
        assert!(dir(&root, &["tags"]).entries.contains_key("a_b"));
        assert!(dir(&root, &["tags"]).entries.contains_key("_.."));
        assert_eq!(dir(&root, &["apps", "shop", "db"]).entries.len(), 2);
        assert_eq!(
            dir(&root, &["volumes", "k8s", "ns", "pod", "vol"])
                .entries
                .len(),
            2
        );
        assert!(
            dir(&root, &["ids"])
                .entries
                .contains_key(&Id([3; 32]).short())
        );
        assert_eq!(component(&"x".repeat(300)).len(), 255);
        let deep = "a/".repeat(30_000);
        let root = layout(&[(
            Id([4; 32]),
            snap("2026-03-01T01:00:00Z", "h", &[], Some(&deep), None),
        )]);
        let mut d = dir(&root, &["apps"]);
        let mut depth = 0;
        while let Some(Entry::Dir(next)) = d.entries.values().find(|e| matches!(e, Entry::Dir(_))) {
            d = next;
            depth += 1;
        }
        assert_eq!(depth, 8, "nesting is bounded");
        assert_eq!(component(""), "_");
    }
}
