//! Backup, restore, copy and prune on a store that fails 10 % of calls and cuts 1 % of reads
//! short: each run completes or fails with a backend or corruption error (the engine does not
//! retry; the built-in remote backends retry transient errors below it), the repository then
//! checks clean with `--read-data` (nothing half-written is referenced), and the same
//! operation run again on a store that behaves succeeds. A restore that completes under faults
//! restores exactly what was backed up: a short read is never taken for data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cairn_repo::ops::backup::{BackupOptions, BackupSource, NoProgress, backup};
use cairn_repo::ops::check::{ReadData, check};
use cairn_repo::ops::copy::copy;
use cairn_repo::ops::prune::{PruneOptions, prune};
use cairn_repo::ops::restore::{RestoreOptions, restore};
use cairn_repo::{Backend, ErrorKind, FileType, Id, InitOptions, Repository, Result};
use cairn_testing::InMemoryBackend;
use cairn_testing::faulty::{FaultRates, FaultStats, FaultyBackend};
use cairn_testing::fixture::{random_bytes, snapshot_state};

use crate::support::{PASSWORD, actor, fast_kdf};

const ROUNDS: u64 = 8;
const VOLUME: &str = "test/faults/vol";

/// Small chunks and packs, so that a few MiB make many blobs and several packs.
fn small_repo(be: Arc<dyn Backend>, like: Option<&Repository>) -> Repository {
    let mut opts = InitOptions::default()
        .kdf(fast_kdf())
        .chunker_sizes(Some((8 * 1024, 32 * 1024, 128 * 1024)))
        .pack_size(Some(1024 * 1024));
    opts.copy_chunker_params = like.map(|r| r.config().chunker);
    Repository::init(be, PASSWORD, &opts, &actor()).expect("init")
}

fn faulty(seed: u64) -> Arc<FaultyBackend> {
    let b = FaultyBackend::new(Arc::new(InMemoryBackend::new()), FaultRates::harsh(), seed);
    b.set_enabled(false);
    Arc::new(b)
}

/// Content of every file below `root`, by relative path.
fn files(root: &Path) -> BTreeMap<String, String> {
    snapshot_state(root)
        .into_iter()
        .filter(|(_, s)| s.mode & 0o170000 == 0o100000)
        .map(|(p, s)| (p, s.content))
        .collect()
}

/// Outcomes of one operation over the rounds.
#[derive(Default)]
struct Tally {
    runs: u64,
    completed: u64,
    completed_despite_faults: u64,
    failed_cleanly: u64,
    faults: FaultStats,
}

struct Harness {
    stores: Vec<Arc<FaultyBackend>>,
    tallies: BTreeMap<&'static str, Tally>,
}

impl Harness {
    fn faults(&self, on: bool) {
        for s in &self.stores {
            s.set_enabled(on);
        }
    }

    fn stats(&self) -> FaultStats {
        let mut all = FaultStats::default();
        for s in &self.stores {
            let x = s.stats();
            all.calls += x.calls;
            all.failed_before += x.failed_before;
            all.failed_after += x.failed_after;
            all.truncated += x.truncated;
            all.delayed += x.delayed;
            all.exists_after_write += x.exists_after_write;
        }
        all
    }

    /// Runs `op` under faults; when it fails, checks that the failure is a clean one and that
    /// `repos` check clean, then runs it again without faults, which must succeed.
    fn run<T>(
        &mut self,
        name: &'static str,
        repos: &[&Repository],
        op: impl Fn() -> Result<T>,
    ) -> T {
        let before = self.stats();
        self.faults(true);
        let outcome = op();
        self.faults(false);
        let injected = self.stats().since(&before);
        let tally = self.tallies.entry(name).or_default();
        tally.runs += 1;
        for (sum, x) in [
            (&mut tally.faults.calls, injected.calls),
            (&mut tally.faults.failed_before, injected.failed_before),
            (&mut tally.faults.failed_after, injected.failed_after),
            (&mut tally.faults.truncated, injected.truncated),
            (&mut tally.faults.delayed, injected.delayed),
            (
                &mut tally.faults.exists_after_write,
                injected.exists_after_write,
            ),
        ] {
            *sum += x;
        }
        let value = match outcome {
            Ok(v) => {
                tally.completed += 1;
                if injected.faults() > 0 {
                    tally.completed_despite_faults += 1;
                }
                v
            }
            Err(e) => {
                tally.failed_cleanly += 1;
                assert!(
                    matches!(e.kind(), ErrorKind::Backend | ErrorKind::Corrupt),
                    "{name} failed with an unexpected {:?}: {e} (faults: {injected})",
                    e.kind()
                );
                for r in repos {
                    assert_clean(r, &format!("after {name} failed with: {e}"));
                }
                op().unwrap_or_else(|e2| {
                    panic!("{name} fails again on a store without faults: {e2} (first: {e})")
                })
            }
        };
        for r in repos {
            assert_clean(r, &format!("after {name}"));
        }
        value
    }
}

fn assert_clean(repo: &Repository, when: &str) {
    let report = check(repo, ReadData::All, &NoProgress).expect("check lists the repository");
    assert_eq!(
        report.errors(),
        0,
        "check --read-data {when}: {:#?}",
        report.problems
    );
}

#[test]
#[expect(clippy::print_stderr, reason = "the figures are the test's report")]
fn operations_complete_or_fail_cleanly_under_faults() {
    let src_store = faulty(0x5eed_0001);
    let dst_store = faulty(0x5eed_0002);
    let repo = small_repo(src_store.clone(), None);
    let dst = small_repo(dst_store.clone(), Some(&repo));
    let mut h = Harness {
        stores: vec![src_store.clone(), dst_store.clone()],
        tallies: BTreeMap::new(),
    };
    let source = tempfile::tempdir().unwrap();
    // By root tree: a backup that failed after its snapshot was stored leaves a second
    // snapshot of the same tree.
    let mut expected: BTreeMap<Id, BTreeMap<String, String>> = BTreeMap::new();
    let cancel = AtomicBool::new(false);

    for round in 0..ROUNDS {
        // A new file, a changed one, a small one.
        std::fs::write(
            source.path().join(format!("new-{round}")),
            random_bytes(400 * 1024, round),
        )
        .unwrap();
        std::fs::write(
            source.path().join("changing"),
            random_bytes(200 * 1024, 1000 + round),
        )
        .unwrap();
        std::fs::write(source.path().join("small"), format!("round {round}")).unwrap();

        let mut opts = BackupOptions::new(actor());
        opts.volume = Some(VOLUME.into());
        let outcome = h.run("backup", &[&repo], || {
            backup(
                &repo.clone().to_indexed()?,
                BackupSource::Volume(source.path().to_path_buf()),
                &opts,
                &NoProgress,
                &cancel,
            )
        });
        let tree = outcome.snapshot.tree;
        expected.insert(tree, files(source.path()));

        let target = tempfile::tempdir().unwrap();
        h.run("restore", &[&repo], || {
            let dir = target.path().join(format!("try-{}", rand::random::<u64>()));
            let mut opts = RestoreOptions::default();
            opts.target = dir.clone();
            restore(
                &repo.clone().to_indexed()?,
                tree,
                &opts,
                &NoProgress,
                &cancel,
            )?;
            assert_eq!(
                files(&dir),
                expected[&tree],
                "restore completed with other content than was backed up"
            );
            Ok(())
        });

        h.run("copy", &[&repo, &dst], || {
            let snaps = repo.snapshots()?;
            copy(
                &repo.clone().to_indexed()?,
                &dst.clone().to_indexed()?,
                &snaps,
                false,
            )
        });

        if round % 2 == 1 {
            // Forget the oldest snapshot (as `forget` does, a removal), then prune for real:
            // unused packs go, partly used ones are repacked.
            let snaps = repo.snapshots().unwrap();
            let (first, _) = snaps.first().unwrap();
            src_store
                .inner()
                .remove(FileType::Snapshot, &first.to_hex())
                .unwrap();
            let mut opts = PruneOptions::default();
            opts.max_unused_percent = 0.0;
            h.run("prune", &[&repo], || prune(&repo, &opts));
        }
    }

    // Everything that is left restores as it was backed up.
    let repo = repo.to_indexed().unwrap();
    for (id, snap) in repo.snapshots().unwrap() {
        let target = tempfile::tempdir().unwrap();
        let mut opts = RestoreOptions::default();
        opts.target = target.path().to_path_buf();
        restore(&repo, snap.tree, &opts, &NoProgress, &cancel).unwrap();
        assert_eq!(files(target.path()), expected[&snap.tree], "snapshot {id}");
    }

    let mut total = Tally::default();
    for (name, t) in &h.tallies {
        eprintln!(
            "faults: {name}: {} runs, {} completed ({} despite faults), {} failed cleanly and \
             then succeeded without faults; {}",
            t.runs, t.completed, t.completed_despite_faults, t.failed_cleanly, t.faults
        );
        total.runs += t.runs;
        total.completed += t.completed;
        total.completed_despite_faults += t.completed_despite_faults;
        total.failed_cleanly += t.failed_cleanly;
    }
    eprintln!(
        "faults: all: {} runs, {} completed ({} despite faults), {} failed cleanly; {}",
        total.runs,
        total.completed,
        total.completed_despite_faults,
        total.failed_cleanly,
        h.stats()
    );
    assert!(h.stats().faults() > 0, "faults were injected");
}
