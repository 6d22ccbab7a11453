//! `check`: prove the repository is intact.
//!
//! 0. Every key slot's content matches its name and parses, and the stored config decodes to
//!    the one the repository was opened with (opening reads only the config and the slots it
//!    tries, so damage to another slot would otherwise go unseen until it is needed).
//! 1. Every index file opens.
//! 2. Every indexed pack exists with the indexed size, and its header lists exactly what the
//!    index says. Packs that no index names are reported as orphans (what an interrupted
//!    backup leaves; not an error).
//! 3. Every snapshot opens, and every tree and blob it reaches is indexed; every tree parses.
//! 4. With `read_data`, every selected pack is read whole: its hash must be its name and every
//!    blob must decrypt, decompress and hash to its id.
//!
//! Problems are collected, each naming the object, and the check goes on; it fails (`Err`) only
//! when the repository cannot be listed at all.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{FileType, REREADS};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Config;
use crate::format::decode_file;
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::format::pack::{BlobEntry, BlobType, open_blob, parse_header};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::Id;
use crate::index::Index;
use crate::indexed::IndexedRepository;
use crate::repository::Repository;

/// Which packs to read in full.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadData {
    /// None: structure only.
    #[default]
    None,
    /// All of them.
    All,
    /// Subset `n` of `of` (1-based): packs whose id falls in that slice, so `1/7` … `7/7` on
    /// seven days read everything once.
    Part {
        /// Which subset, 1..=of.
        n: u32,
        /// How many subsets.
        of: u32,
    },
    /// A random `x` percent of the packs.
    Percent(f64),
    /// Random packs up to this many bytes.
    Bytes(u64),
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is missing or damaged.
    Error,
    /// Unreferenced data (prune removes it); not an error.
    Orphan,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// How serious.
    pub severity: Severity,
    /// The object, as `<type> <id>`.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Index files read.
    pub index_files: u64,
    /// Packs indexed.
    pub packs: u64,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees checked.
    pub trees: u64,
    /// Packs read in full.
    pub packs_read: u64,
    /// Bytes read in full.
    pub bytes_read: u64,
    /// Blobs verified by reading.
    pub blobs_verified: u64,
    /// Everything found.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Number of errors (orphans are not errors).
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }
}

/// Progress of a check.
pub trait CheckProgress: Send + Sync {
    /// A phase starts with `total` units of work.
    fn phase(&self, _name: &str, _total: u64) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
}

impl CheckProgress for crate::ops::backup::NoProgress {}

struct Findings(Mutex<Vec<Problem>>);

impl Findings {
    fn add(&self, severity: Severity, object: String, message: impl Into<String>) {
        self.0.lock().expect("findings").push(Problem {
            severity,
            object,
            message: message.into(),
        });
    }
    fn error(&self, object: String, message: impl Into<String>) {
        self.add(Severity::Error, object, message);
    }
}

fn select_packs(packs: &[(Id, u64)], read: ReadData) -> Vec<(Id, u64)> {
    let mut shuffled = packs.to_vec();
    shuffled.shuffle(&mut rand::rng());
    match read {
        ReadData::None => Vec::new(),
        ReadData::All => packs.to_vec(),
        ReadData::Part { n, of } => packs
            .iter()
            .filter(|(id, _)| {
                let bucket = u32::from_be_bytes(id.0[..4].try_into().expect("4 bytes"));
                // Slice the id space evenly: subset k holds ids in [k-1, k) / of.
                ((u64::from(bucket) * u64::from(of)) >> 32) as u32 == n - 1
            })
            .copied()
            .collect(),
        ReadData::Percent(p) => {
            let count = ((packs.len() as f64) * p / 100.0).ceil() as usize;
            shuffled.into_iter().take(count.min(packs.len())).collect()
        }
        ReadData::Bytes(limit) => {
            let mut total = 0;
            shuffled
                .into_iter()
                .take_while(|(_, size)| {
                    let take = total < limit;
                    total += size;
                    take
                })
                .collect()
        }
    }
}

/// Step 0: every key slot is intact (by its name, which is its hash) and parses; the stored
/// config is the one in use.
fn check_keys_and_config(repo: &Repository, findings: &Findings) -> Result<()> {
    for (name, _) in repo.backend().list(FileType::Key)? {
        let object = format!("key {name}");
        // Read again what does not verify: a garbled answer is not damage.
        let read = repo.read_verified(
            || repo.backend().read(FileType::Key, &name),
            |bytes| {
                if Id::hash_of(&bytes).to_hex() != name {
                    return Err(Error::corrupt(
                        "its content does not match its name (damaged)",
                    ));
                }
                KeyFile::from_bytes(&name, &bytes)
            },
        );
        if let Err(e) = read {
            findings.error(object, e.to_string());
        }
    }
    let object = || String::from("config");
    let read = repo.read_verified(
        || repo.backend().read(FileType::Config, "config"),
        |bytes| decode_file::<Config>(repo.key(), FileType::Config, "config", &bytes),
    );
    match read {
        Ok(c) if c == *repo.config() => {}
        Ok(_) => findings.error(
            object(),
            "differs from the config the repository was opened with",
        ),
        Err(e) => findings.error(object(), e.to_string()),
    }
    Ok(())
}

/// Checks the repository. Setting `cancel` stops it between phases and between the packs
/// it reads ([`ErrorKind::Interrupted`]).
///
/// # Errors
/// When the repository cannot be listed, or on `cancel`; everything else is a [`Problem`].
pub fn check(
    repo: &Repository,
    read: ReadData,
    progress: &dyn CheckProgress,
    cancel: &AtomicBool,
) -> Result<CheckReport> {
    let stopped = || {
        if cancel.load(Ordering::Relaxed) {
            Err(Error::new(ErrorKind::Interrupted, "check cancelled"))
        } else {
            Ok(())
        }
    };
    if let ReadData::Part { n, of } = read
        && (of == 0 || n == 0 || n > of)
    {
        return Err(Error::invalid(format!(
            "read-data subset {n}/{of} is not of the form n/t with 1 <= n <= t"
        )));
    }
    let findings = Findings(Mutex::new(Vec::new()));
    let mut report = CheckReport::default();

    // 0. Key slots and config.
    check_keys_and_config(repo, &findings)?;

    // 1. Index files.
    let index_names = repo.backend().list(FileType::Index)?;
    progress.phase("index", index_names.len() as u64);
    let files: Vec<(Id, IndexFile)> = index_names
        .par_iter()
        .filter_map(|(name, _)| {
            progress.advance(1);
            let id: Id = match name.parse() {
                Ok(id) => id,
                Err(_) => {
                    findings.error(format!("index {name}"), "the name is not an id");
                    return None;
                }
            };
            match repo.load_file::<IndexFile>(FileType::Index, &id) {
                Ok(f) => Some((id, f)),
                Err(e) => {
                    findings.error(format!("index {id}"), e.to_string());
                    None
                }
            }
        })
        .collect();
    report.index_files = files.len() as u64;
    let index = Index::default();
    let mut indexed: HashMap<Id, (u64, Vec<BlobEntry>)> = HashMap::new();
    for (_, f) in &files {
        for p in &f.packs {
            index.add_pack(p);
            indexed
                .entry(p.id)
                .or_insert_with(|| (p.size, p.blobs.clone()));
        }
    }
    report.packs = indexed.len() as u64;

    // 2. Packs: presence, size, header against index.
    let stored: HashMap<Id, u64> = repo.packs()?.into_iter().collect();
    for (id, size) in &stored {
        if !indexed.contains_key(id) {
            findings.add(
                Severity::Orphan,
                format!("pack {id}"),
                format!("{size} bytes not referenced by any index (left by an interrupted backup; prune removes it)"),
            );
        }
    }
    let packs: Vec<(Id, u64)> = indexed.iter().map(|(id, (size, _))| (*id, *size)).collect();
    progress.phase("packs", packs.len() as u64);
    let indexed_repo = IndexedRepository::from_parts(repo.clone(), index);
    packs.par_iter().for_each(|(id, size)| {
        progress.advance(1);
        let object = format!("pack {id}");
        match stored.get(id) {
            None => {
                return findings.error(object, "is in the index but missing from the repository");
            }
            Some(s) if s != size => {
                return findings.error(object, format!("is {s} bytes, the index says {size}"));
            }
            Some(_) => {}
        }
        match crate::ops::recover::read_pack_header(&indexed_repo, id, *size) {
            Ok(header) => {
                let mut a = header.blobs.clone();
                let mut b = indexed[id].1.clone();
                a.sort_by_key(|e| (e.offset, e.id));
                b.sort_by_key(|e| (e.offset, e.id));
                if a != b {
                    findings.error(
                        object,
                        "its header does not list what the index says it holds",
                    );
                }
            }
            Err(e) => findings.error(object, e.to_string()),
        }
    });

    // 3. Snapshots and the trees and blobs they reach.
    let snap_names = repo.backend().list(FileType::Snapshot)?;
    progress.phase("snapshots", snap_names.len() as u64);
    let seen_trees: Mutex<HashSet<Id>> = Mutex::new(HashSet::new());
    let trees = AtomicU64::new(0);
    let snaps = AtomicU64::new(0);
    snap_names.par_iter().for_each(|(name, _)| {
        progress.advance(1);
        let Ok(id) = name.parse::<Id>() else {
            return findings.error(format!("snapshot {name}"), "the name is not an id");
        };
        let snap: Snapshot = match repo.load_file(FileType::Snapshot, &id) {
            Ok(s) => s,
            Err(e) => return findings.error(format!("snapshot {id}"), e.to_string()),
        };
        snaps.fetch_add(1, Ordering::Relaxed);
        let mut stack = vec![(snap.tree, String::from("/"))];
        while let Some((tree_id, path)) = stack.pop() {
            if !seen_trees.lock().expect("trees").insert(tree_id) {
                continue;
            }
            trees.fetch_add(1, Ordering::Relaxed);
            let where_ = format!("tree {tree_id}");
            let tree = match indexed_repo.index().get(&tree_id) {
                None => {
                    findings.error(
                        where_,
                        format!("({path} in snapshot {}) is in no pack", id.short()),
                    );
                    continue;
                }
                Some(loc) if loc.entry.tpe != BlobType::Tree => {
                    findings.error(
                        where_,
                        format!(
                            "({path} in snapshot {}) is indexed as a data blob",
                            id.short()
                        ),
                    );
                    continue;
                }
                Some(_) => match indexed_repo
                    .read_blob(&tree_id)
                    .and_then(|b| Tree::from_bytes(&tree_id, &b))
                {
                    Ok(t) => t,
                    Err(e) => {
                        findings.error(where_, format!("({path} in snapshot {}): {e}", id.short()));
                        continue;
                    }
                },
            };
            for node in &tree.nodes {
                let child = format!("{}{}", path, node.name.display());
                match node.kind {
                    NodeKind::Dir => match node.subtree {
                        Some(sub) => stack.push((sub, format!("{child}/"))),
                        None => findings
                            .error(where_.clone(), format!("directory {child} has no subtree")),
                    },
                    NodeKind::File => {
                        for blob in node.content.iter().flatten() {
                            if !indexed_repo.index().contains(blob) {
                                findings.error(
                                    format!("blob {blob}"),
                                    format!(
                                        "(of {child} in snapshot {}) is in no pack",
                                        id.short()
                                    ),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    report.snapshots = snaps.into_inner();
    report.trees = trees.into_inner();

    // 4. Read data.
    stopped()?;
    let selected = select_packs(&packs, read);
    let bytes_total: u64 = selected.iter().map(|p| p.1).sum();
    progress.phase("read data", bytes_total);
    let packs_read = AtomicU64::new(0);
    let bytes_read = AtomicU64::new(0);
    let blobs_ok = AtomicU64::new(0);
    selected.par_iter().for_each(|(id, size)| {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let object = format!("pack {id}");
        // Read again when the content does not match the name: a short or garbled answer
        // from a flaky store is not damage. What is damaged still is, after the last read.
        let mut data = Err(Error::corrupt("unread"));
        for n in 0..=REREADS {
            if n > 0 {
                repo.note_reread();
            }
            data = repo.backend().read(FileType::Pack, &id.to_hex());
            match &data {
                Ok(d) if Id::hash_of(d) != *id => {}
                Err(e) if e.kind() == ErrorKind::Corrupt => {}
                _ => break,
            }
        }
        let data = match data {
            Ok(d) => d,
            Err(e) => return findings.error(object, e.to_string()),
        };
        progress.advance(*size);
        packs_read.fetch_add(1, Ordering::Relaxed);
        bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
        if Id::hash_of(&data) != *id {
            findings.error(
                object.clone(),
                "its content does not match its name (damaged)",
            );
        }
        let entries = match parse_header(repo.key(), id, data.len() as u64, &data) {
            Ok(Ok(e)) => e,
            Ok(Err(_)) => return findings.error(object, "header is unreadable"),
            Err(e) => return findings.error(object, e.to_string()),
        };
        for e in &entries {
            let sealed = &data[e.offset as usize..e.offset as usize + e.length as usize];
            match open_blob(repo.key(), repo.blob_limits(), e, sealed, id) {
                Ok(_) => {
                    blobs_ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => findings.error(format!("blob {}", e.id), err.to_string()),
            }
        }
    });
    report.packs_read = packs_read.into_inner();
    report.bytes_read = bytes_read.into_inner();
    report.blobs_verified = blobs_ok.into_inner();
    stopped()?;
    let mut problems = findings.0.into_inner().expect("findings");
    problems.sort_by(|a, b| (a.severity as u8, &a.object).cmp(&(b.severity as u8, &b.object)));
    report.problems = problems;
    Ok(report)
}
