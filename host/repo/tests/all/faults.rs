//! Backup, restore, copy and prune on a store that fails 10 % of calls and cuts 1 % of reads
//! short: the engine retries transient errors (`RetryBackend`, here with millisecond waits)
//! and reads again what fails verification, so each operation completes (almost always on its
//! first attempt), the repository then checks clean with `--read-data`, and a restore restores
//! exactly what was backed up: a short or garbled read is never taken for data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cairn_repo::backend::{RetryPolicy, RetryStats};
use cairn_repo::ops::backup::{BackupOptions, BackupSource, NoProgress, backup};
use cairn_repo::ops::check::{ReadData, check};
use cairn_repo::ops::copy::copy;
use cairn_repo::ops::prune::{PruneOptions, prune};
use cairn_repo::ops::restore::{RestoreOptions, restore};
use cairn_repo::{Backend, ErrorKind, FileType, Id, InitOptions, OpenOptions, Repository, Result};
use cairn_testing::InMemoryBackend;
use cairn_testing::faulty::{FaultRates, FaultStats, FaultyBackend};
use cairn_testing::fixture::{random_bytes, snapshot_state};

use crate::support::{PASSWORD, actor, fast_kdf};

/// Attempts of one operation under faults before it is run without.
const ATTEMPTS: u32 = 4;
const VOLUME: &str = "test/faults/vol";

/// The default schedule's five tries, with waits of a millisecond or so to keep tests fast.
fn fast_retry() -> RetryPolicy {
    RetryPolicy::new(
        5,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(8),
    )
}

/// Small chunks and packs, so that a few MiB make many blobs and several packs.
fn small_repo(be: Arc<dyn Backend>, like: Option<&Repository>) -> Repository {
    let mut opts = InitOptions::default()
        .kdf(fast_kdf())
        .chunker_sizes(Some((8 * 1024, 32 * 1024, 128 * 1024)))
        .pack_size(Some(1024 * 1024))
        .retry(fast_retry());
    opts.copy_chunker_params = like.map(|r| r.config().chunker);
    Repository::init(be, PASSWORD, &opts, &actor()).expect("init")
}

fn faulty(inner: Arc<dyn Backend>, seed: u64) -> Arc<FaultyBackend> {
    let b = FaultyBackend::new(inner, FaultRates::harsh(), seed);
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
    /// Operations asked for.
    ops: u64,
    /// Attempts under faults.
    runs: u64,
    completed: u64,
    /// Operations that completed on their first attempt.
    first_attempt: u64,
    completed_despite_faults: u64,
    failed_cleanly: u64,
    /// Operations that failed every attempt under faults and were run without.
    needed_a_clean_store: u64,
    faults: FaultStats,
    retries: RetryStats,
    /// Why attempts failed.
    failures: Vec<String>,
}

fn add_retries(a: &mut RetryStats, b: RetryStats) {
    a.retries += b.retries;
    a.gave_up += b.gave_up;
    a.rereads += b.rereads;
}

fn retry_stats(repos: &[&Repository]) -> RetryStats {
    let mut all = RetryStats::default();
    for r in repos {
        add_retries(&mut all, r.retry_stats());
    }
    all
}

impl std::ops::AddAssign<&Tally> for Tally {
    fn add_assign(&mut self, t: &Tally) {
        self.ops += t.ops;
        self.runs += t.runs;
        self.completed += t.completed;
        self.first_attempt += t.first_attempt;
        self.completed_despite_faults += t.completed_despite_faults;
        self.failed_cleanly += t.failed_cleanly;
        self.needed_a_clean_store += t.needed_a_clean_store;
        self.faults += t.faults;
        add_retries(&mut self.retries, t.retries);
        self.failures.extend(t.failures.iter().cloned());
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} operations, {} attempts under faults: {} completed ({} on the first attempt, \
             {} despite faults), {} failed cleanly; {} needed a store without faults; {}; \
             {} calls retried, {} given up, {} reads repeated",
            self.ops,
            self.runs,
            self.completed,
            self.first_attempt,
            self.completed_despite_faults,
            self.failed_cleanly,
            self.needed_a_clean_store,
            self.faults,
            self.retries.retries,
            self.retries.gave_up,
            self.retries.rereads,
        )
    }
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
            all += s.stats();
        }
        all
    }

    /// Runs `op` under faults up to [`ATTEMPTS`] times, until it completes. Each failure must
    /// be a clean one and leave `repos` checking clean. When every attempt failed, `op` runs
    /// on stores without faults, where it must succeed.
    fn run<T>(
        &mut self,
        name: &'static str,
        repos: &[&Repository],
        op: impl Fn() -> Result<T>,
    ) -> T {
        self.tallies.entry(name).or_default().ops += 1;
        for attempt in 0..ATTEMPTS {
            let before = self.stats();
            let retries_before = retry_stats(repos);
            self.faults(true);
            let outcome = op();
            self.faults(false);
            let injected = self.stats().since(&before);
            let retried = retry_stats(repos);
            let tally = self.tallies.entry(name).or_default();
            tally.runs += 1;
            tally.faults += injected;
            tally.retries.retries += retried.retries - retries_before.retries;
            tally.retries.gave_up += retried.gave_up - retries_before.gave_up;
            tally.retries.rereads += retried.rereads - retries_before.rereads;
            match outcome {
                Ok(v) => {
                    tally.completed += 1;
                    if attempt == 0 {
                        tally.first_attempt += 1;
                    }
                    if injected.faults() > 0 {
                        tally.completed_despite_faults += 1;
                    }
                    for r in repos {
                        assert_clean(r, &format!("after {name}"));
                    }
                    return v;
                }
                Err(e) => {
                    tally.failed_cleanly += 1;
                    tally.failures.push(format!("{name}: {e}"));
                    assert!(
                        matches!(e.kind(), ErrorKind::Backend | ErrorKind::Corrupt),
                        "{name} failed with an unexpected {:?}: {e} (faults: {injected})",
                        e.kind()
                    );
                    for r in repos {
                        assert_clean(r, &format!("after {name} failed with: {e}"));
                    }
                }
            }
        }
        self.tallies.entry(name).or_default().needed_a_clean_store += 1;
        let v = op().unwrap_or_else(|e| panic!("{name} fails on a store without faults: {e}"));
        for r in repos {
            assert_clean(r, &format!("after {name}"));
        }
        v
    }
}

fn assert_clean(repo: &Repository, when: &str) {
    let report = check(repo, ReadData::All, &NoProgress, &Default::default())
        .expect("check lists the repository");
    assert_eq!(
        report.errors(),
        0,
        "check --read-data {when}: {:#?}",
        report.problems
    );
}

#[test]
fn operations_complete_under_faults() {
    let stores = || Arc::new(InMemoryBackend::new()) as Arc<dyn Backend>;
    fault_rounds("memory", stores(), stores(), 10, 0x5eed_0001);
}

/// The same on local directories: packs are written to temporary files and renamed (whole,
/// from memory, so that a failed write can be repeated), and prune removes what failed
/// writers left.
#[test]
fn operations_complete_under_faults_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = |name: &str| {
        Arc::new(cairn_backend::LocalBackend::new(dir.path().join(name))) as Arc<dyn Backend>
    };
    fault_rounds("local", store("src"), store("dst"), 4, 0x5eed_0011);
}

#[expect(clippy::print_stderr, reason = "the figures are the test's report")]
fn fault_rounds(label: &str, src: Arc<dyn Backend>, dst: Arc<dyn Backend>, rounds: u64, seed: u64) {
    let src_store = faulty(src, seed);
    let dst_store = faulty(dst, seed + 1);
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

    for round in 0..rounds {
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
            h.run("prune", &[&repo], || {
                prune(&repo, &opts, &std::sync::atomic::AtomicBool::new(false))
            });
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
        eprintln!("faults ({label}): {name}: {t}");
        total += t;
    }
    eprintln!("faults ({label}): all: {total}");
    for f in &total.failures {
        eprintln!("faults ({label}): an attempt failed: {f}");
    }
    assert_eq!(
        total.faults,
        h.stats(),
        "faults are injected only during attempts"
    );
    assert!(h.stats().faults() > 0, "faults were injected");
    assert!(total.retries.retries > 0, "calls were retried: {total}");
    for (name, t) in &h.tallies {
        assert_eq!(
            t.needed_a_clean_store, 0,
            "every {name} completes under faults: {t}"
        );
        assert!(
            t.first_attempt * 10 >= t.ops * 9,
            "at least 90 % of {name}s complete on their first attempt: {t}"
        );
    }
}

/// Reads cut short or garbled, and nothing else: every restore completes with exactly what
/// was backed up, and every `check --read-data` is clean, because what fails verification is
/// read again (the stored data is intact; damage that is really there is still reported, see
/// `byte_flips`). Without the re-reads restores fail as corrupt and checks report damage.
#[test]
#[expect(clippy::print_stderr, reason = "the figures are the test's report")]
fn short_and_garbled_reads_are_read_again() {
    let store = Arc::new(InMemoryBackend::new());
    let repo = small_repo(store.clone(), None);
    let source = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(
            source.path().join(format!("f{i}")),
            random_bytes(150 * 1024, 50 + i),
        )
        .unwrap();
    }
    let mut opts = BackupOptions::new(actor());
    opts.volume = Some(VOLUME.into());
    let cancel = AtomicBool::new(false);
    let snap = backup(
        &repo.clone().to_indexed().unwrap(),
        BackupSource::Volume(source.path().to_path_buf()),
        &opts,
        &NoProgress,
        &cancel,
    )
    .unwrap()
    .snapshot;
    let expected = files(source.path());
    let rates = FaultRates {
        truncate: 0.03,
        garble: 0.03,
        ..FaultRates::NONE
    };
    let cutting = Arc::new(FaultyBackend::new(store, rates, 0x5eed_0003));
    cutting.set_enabled(false);
    let ropen = OpenOptions::default().retry(fast_retry());
    let repo = Repository::open_with(cutting.clone(), PASSWORD, &ropen, &cancel).unwrap();
    cutting.set_enabled(true);
    let target = tempfile::tempdir().unwrap();
    for i in 0..25 {
        let mut ropts = RestoreOptions::default();
        ropts.target = target.path().join(format!("r{i}"));
        repo.clone()
            .to_indexed()
            .and_then(|r| restore(&r, snap.tree, &ropts, &NoProgress, &cancel))
            .unwrap_or_else(|e| panic!("restore {i}: {e} ({})", cutting.stats()));
        assert_eq!(files(&ropts.target), expected);
        let report = check(&repo, ReadData::All, &NoProgress, &Default::default()).unwrap();
        assert_eq!(report.errors(), 0, "check {i}: {:#?}", report.problems);
    }
    let (faults, retried) = (cutting.stats(), repo.retry_stats());
    eprintln!(
        "faults: short and garbled reads: {} cut, {} garbled; 25 restores and 25 checks all \
         exact and clean; {} range reads repeated, {} reads repeated after failing verification",
        faults.truncated, faults.garbled, retried.retries, retried.rereads
    );
    assert!(faults.truncated > 0 && faults.garbled > 0, "{faults}");
    assert!(retried.rereads > 0, "{retried:?}");
}

/// A store that answers "already exists" to every write that landed (a client retrying a
/// create-only write whose first answer was lost): every file is content-addressed, so the
/// backup succeeds and the repository is whole.
#[test]
fn already_exists_after_a_landed_write_is_success() {
    let rates = FaultRates {
        exists_after_write: 1.0,
        ..FaultRates::NONE
    };
    let store = Arc::new(FaultyBackend::new(
        Arc::new(InMemoryBackend::new()),
        rates,
        0x5eed_0004,
    ));
    store.set_enabled(false);
    let repo = small_repo(store.clone(), None);
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("f"), random_bytes(300 * 1024, 77)).unwrap();
    let mut opts = BackupOptions::new(actor());
    opts.volume = Some(VOLUME.into());
    store.set_enabled(true);
    backup(
        &repo.clone().to_indexed().unwrap(),
        BackupSource::Volume(source.path().to_path_buf()),
        &opts,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .expect("backup succeeds");
    store.set_enabled(false);
    assert!(store.stats().exists_after_write >= 3, "{}", store.stats());
    assert_clean(&repo, "after the backup");
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}
