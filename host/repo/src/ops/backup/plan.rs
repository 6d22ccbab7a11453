//! Where the paths given to a backup go in the snapshot, as restic lays them out: an absolute
//! path at its absolute place (`/srv/site` as `srv/site`), a relative one with its relative
//! structure (`sub/dir` as `sub/dir`; leading `..` dropped, so `../x` is `x`), and one that is
//! only `.` or `..` stands for the directory's entries (`cd /srv/site && backup .` stores the
//! site's contents at the root). The snapshot's `paths` are the absolute paths given, so that
//! the next backup from the same place finds its parent.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A directory level of the snapshot: either a path given on the command line or a parent of
/// one (recorded with the real directory's metadata). Each holds the absolute path to read.
pub(super) enum Item {
    Given(PathBuf),
    Parent(PathBuf, Items),
}

/// The snapshot's top levels, by name.
pub(super) type Items = BTreeMap<Vec<u8>, Item>;

/// Makes `p` absolute and lexically clean (no `.`/`..`), without following symlinks.
pub(super) fn clean_absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p)
        .map_err(|e| Error::io(format!("cannot resolve {}", p.display()), e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Where a relative path goes: its lexically clean names, leading `..` dropped.
fn relative_place(p: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => names.push(n.to_owned()),
            // A `..` with nothing to cancel climbs above the working directory: restic drops
            // it too (`../x` is stored as `x`).
            Component::ParentDir => {
                names.pop();
            }
            _ => {}
        }
    }
    names
}

/// A path to read and its place in the snapshot.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Placed {
    at: Vec<OsString>,
    abs: PathBuf,
}

/// The snapshot's paths (absolute, sorted) and its levels.
///
/// # Errors
/// A path that does not exist, `/` itself, a directory given as `.` that cannot be listed or
/// is empty, or two paths that would be stored at one place.
pub(super) fn plan(paths: &[PathBuf]) -> Result<(Vec<String>, Items)> {
    let mut shown = Vec::new();
    let mut placed = Vec::new();
    for p in paths {
        let abs = clean_absolute(p)?;
        if std::fs::symlink_metadata(&abs).is_err() {
            return Err(Error::invalid(format!("{} does not exist", abs.display())));
        }
        if p.is_absolute() && abs == Path::new("/") {
            return Err(Error::invalid(
                "backing up `/` itself is not supported; name the directories below it",
            ));
        }
        let at = if p.is_absolute() {
            abs.components()
                .skip(1)
                .map(|c| c.as_os_str().to_owned())
                .collect()
        } else {
            relative_place(p)
        };
        if at.is_empty() {
            // `.`, `..`: the directory's entries, each at the root.
            let entries = std::fs::read_dir(&abs)
                .map_err(|e| Error::io(format!("cannot list {}", abs.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("cannot list {}", abs.display()), e))?;
                placed.push(Placed {
                    at: vec![entry.file_name()],
                    abs: abs.join(entry.file_name()),
                });
            }
        } else {
            placed.push(Placed {
                at,
                abs: abs.clone(),
            });
        }
        shown.push(abs);
    }
    shown.sort();
    shown.dedup();
    // A path below another given path is covered by it (the snapshot's paths likewise).
    let shown: Vec<String> = shown
        .iter()
        .filter(|p| !shown.iter().any(|q| q != *p && p.starts_with(q)))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    placed.sort();
    placed.dedup();
    // Only a real directory covers what is below it: a given symlink is saved as a symlink,
    // so a path given through it is kept (and then clashes with it, named). Coverers are
    // looked up by the places above `p`: `backup .` of a directory of 100,000 entries makes
    // that many paths, and comparing each with each would take minutes.
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let mut by_place: HashMap<&[OsString], Vec<&Path>> = HashMap::new();
    for q in &placed {
        by_place.entry(&q.at).or_default().push(&q.abs);
    }
    let covered = |p: &Placed| {
        let n = p.at.len();
        (1..=n).any(|k| {
            by_place.get(&p.at[..k]).is_some_and(|qs| {
                qs.iter()
                    .any(|q| !(k == n && *q == p.abs) && p.abs.starts_with(q) && is_dir(q))
            })
        })
    };
    let placed: Vec<Placed> = placed.iter().filter(|p| !covered(p)).cloned().collect();
    if placed.is_empty() {
        return Err(Error::invalid(format!(
            "nothing to back up: {} is empty",
            shown.join(", ")
        )));
    }
    let mut root = Items::new();
    for p in &placed {
        insert(&mut root, p)?;
    }
    Ok((shown, root))
}

/// Puts `p` in the levels, with the parents it needs.
fn insert(root: &mut Items, p: &Placed) -> Result<()> {
    let clash = |other: &Path| {
        let at: PathBuf = p.at.iter().collect();
        Err(Error::invalid(format!(
            "{} and {} would both be stored as `{}` in the snapshot; back them up separately, \
             or give absolute paths",
            other.display(),
            p.abs.display(),
            at.display()
        )))
    };
    let mut level = root;
    let n = p.at.len();
    for (i, name) in p.at.iter().enumerate() {
        let key = name.as_bytes().to_vec();
        if i + 1 == n {
            if let Some(Item::Given(other) | Item::Parent(other, _)) = level.get(&key) {
                return clash(other);
            }
            level.insert(key, Item::Given(p.abs.clone()));
            return Ok(());
        }
        // The real directory at this level: the given path's ancestor `n - 1 - i` up.
        let mut dir = p.abs.clone();
        for _ in 0..n - 1 - i {
            dir.pop();
        }
        let entry = level
            .entry(key)
            .or_insert_with(|| Item::Parent(dir.clone(), Items::new()));
        level = match entry {
            Item::Parent(other, children) if *other == dir => children,
            Item::Parent(other, _) | Item::Given(other) => return clash(other),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &Items) -> Vec<String> {
        items
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn relative_paths_keep_their_relative_place() {
        assert_eq!(relative_place(Path::new("a/./b/../c")), ["a", "c"]);
        assert_eq!(relative_place(Path::new("../../x/y")), ["x", "y"]);
        assert!(relative_place(Path::new("../..")).is_empty());
        assert!(relative_place(Path::new(".")).is_empty());
    }

    #[test]
    fn absolute_paths_keep_their_place_and_cover_what_is_below() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("site/sub")).unwrap();
        let (shown, items) = plan(&[base.join("site/sub"), base.join("site/sub/..")]).unwrap();
        assert_eq!(shown, [base.join("site").to_string_lossy()]);
        let mut level = &items;
        for name in base.join("site").components().skip(1) {
            assert_eq!(names(level), [name.as_os_str().to_string_lossy()]);
            level = match level.values().next().unwrap() {
                Item::Parent(_, children) => children,
                Item::Given(p) => {
                    assert_eq!(*p, base.join("site"));
                    break;
                }
            };
        }
        assert!(plan(&[PathBuf::from("/")]).is_err());
        assert!(plan(&[base.join("missing")]).is_err());
    }

    #[test]
    fn a_path_below_a_given_symlink_is_not_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("data")).unwrap();
        std::fs::write(base.join("data/f"), "f").unwrap();
        std::os::unix::fs::symlink(base.join("data"), base.join("link")).unwrap();
        let e = plan(&[base.join("link"), base.join("link/f")])
            .err()
            .expect("a clash, not a silent drop")
            .to_string();
        assert!(e.contains("would both be stored"), "{e}");
        // Through a real directory, the path below is covered.
        let (shown, _) = plan(&[base.join("data"), base.join("data/f")]).unwrap();
        assert_eq!(shown, [base.join("data").to_string_lossy()]);
    }

    #[test]
    fn two_paths_at_one_place_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let mut root = Items::new();
        let a = Placed {
            at: vec!["x".into()],
            abs: base.join("a/x"),
        };
        let b = Placed {
            at: vec!["x".into()],
            abs: base.join("b/x"),
        };
        insert(&mut root, &a).unwrap();
        let e = insert(&mut root, &b).unwrap_err().to_string();
        assert!(e.contains("would both be stored as `x`"), "{e}");
        let c = Placed {
            at: vec!["x".into(), "y".into()],
            abs: base.join("c/x/y"),
        };
        assert!(insert(&mut root, &c).is_err());
    }
}
