//! Untrusted repositories, stores and caches: what a store lists, what a key slot asks for
//! and what a write answers are not taken on trust.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cairn_backend::CachedBackend;
use cairn_repo::format::keyfile::KeyFile;
use cairn_repo::lock::lock;
use cairn_repo::{
    Backend, ErrorKind, FileType, Guarantees, InitOptions, KdfLimits, KdfParams, OpenOptions,
    Repository, Result,
};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{PASSWORD, actor, backup_path, fast_kdf, init};

/// A store that misbehaves as the hardening issue describes, over an in-memory one.
#[derive(Default)]
struct Misbehaving {
    inner: Arc<InMemoryBackend>,
    /// Names listed besides what is stored.
    extra: Vec<(FileType, &'static str)>,
    /// Every write is sent twice (a retry whose first try was stored) and answers as the
    /// second did.
    retried: bool,
    /// Whether create-only writes are atomic.
    atomic: bool,
    /// A rival `init`'s config, written just before ours (atomic) or just after (not).
    rival_config: Option<Vec<u8>>,
}

impl Backend for Misbehaving {
    fn location(&self) -> String {
        "misbehaving".into()
    }
    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: self.atomic,
        }
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let mut listed = self.inner.list(tpe)?;
        listed.extend(
            self.extra
                .iter()
                .filter(|(t, _)| *t == tpe)
                .map(|(_, n)| (n.to_string(), 0)),
        );
        Ok(listed)
    }
    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.inner.read(tpe, name)
    }
    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(tpe, name, offset, length)
    }
    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        if let (FileType::Config, Some(rival)) = (tpe, &self.rival_config) {
            if self.atomic {
                self.inner.write(tpe, name, rival)?;
            } else {
                self.inner.write(tpe, name, data)?;
                self.inner.remove(tpe, name)?;
                return self.inner.write(tpe, name, rival);
            }
        }
        if self.retried {
            self.inner.write(tpe, name, data)?;
        }
        self.inner.write(tpe, name, data)
    }
    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.inner.remove(tpe, name)
    }
}

fn names(be: &dyn Backend, tpe: FileType) -> Vec<String> {
    be.list(tpe).unwrap().into_iter().map(|(n, _)| n).collect()
}

fn source() -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), random_bytes(50_000, 7)).unwrap();
    src
}

/// A store listing `../..`, `/dev/zero` and other names cairn never writes, behind the cache
/// that would join them into host paths: the names are ignored, everything works.
#[test]
fn names_a_store_should_not_list_are_ignored() {
    let store = Arc::new(InMemoryBackend::new());
    let repo = init(store.clone());
    backup_path(&repo, source().path());
    let hostile = Misbehaving {
        inner: store,
        extra: vec![
            (FileType::Config, "../config"),
            (FileType::Key, "../../../../etc/passwd"),
            (FileType::Key, "/dev/zero"),
            (FileType::Snapshot, "../.."),
            (FileType::Index, "/dev/zero"),
            (FileType::Pack, "README"),
            (FileType::Lock, "../locks"),
        ],
        atomic: true,
        ..Misbehaving::default()
    };
    let cache = tempfile::tempdir().unwrap();
    let be = Arc::new(CachedBackend::new(Arc::new(hostile), cache.path()));
    let repo = Repository::open(be, PASSWORD).unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    assert_eq!(repo.keys().unwrap().len(), 1);
    assert_eq!(
        repo.packs().unwrap().len(),
        names(&**repo.backend(), FileType::Pack).len()
    );
    let _guard = lock(&repo, true, &actor(), std::process::id()).unwrap();
    for tpe in FileType::ALL {
        for n in names(&**repo.backend(), tpe) {
            assert!(cairn_repo::backend::valid_name(tpe, &n), "{tpe} {n}");
        }
    }
    let e = repo.backend().read(FileType::Key, "/dev/zero").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    repo.to_indexed().unwrap();
}

/// Every write reaches the store and is then answered `already exists` (a retry of a request
/// that was stored): init, backup, locks and key slots all succeed.
#[test]
fn a_retried_write_that_finds_its_object_is_success() {
    let be = Arc::new(Misbehaving {
        retried: true,
        atomic: true,
        ..Misbehaving::default()
    });
    let repo = init(be.clone());
    backup_path(&repo, source().path());
    let guard = lock(&repo, false, &actor(), std::process::id()).unwrap();
    drop(guard);
    repo.add_key(b"second", fast_kdf(), &actor()).unwrap();
    let repo = Repository::open(be, b"second").unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}

fn rival_config() -> Vec<u8> {
    let other = Arc::new(InMemoryBackend::new());
    init(other.clone());
    other.read(FileType::Config, "config").unwrap()
}

/// Two `init`s race on a store without atomic create-only writes and the other's config
/// replaces ours: ours fails, saying so, and takes its key slot away.
#[test]
fn racing_inits_on_a_non_atomic_store_cannot_both_win() {
    for atomic in [false, true] {
        let store = Arc::new(InMemoryBackend::new());
        let be = Arc::new(Misbehaving {
            inner: store.clone(),
            atomic,
            rival_config: Some(rival_config()),
            ..Misbehaving::default()
        });
        let e = Repository::init(
            be,
            PASSWORD,
            &InitOptions::default().kdf(fast_kdf()),
            &actor(),
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("another `cairn init`"), "{e}");
        assert!(names(&*store, FileType::Key).is_empty(), "atomic: {atomic}");
    }
}

/// Without a rival, init on a non-atomic store reads its config back and succeeds.
#[test]
fn init_on_a_non_atomic_store_without_a_rival_succeeds() {
    let be = Arc::new(Misbehaving::default());
    init(be.clone());
    Repository::open(be, PASSWORD).unwrap();
}

/// A key slot as `make` leaves it, stored under its hash next to the repository's.
fn plant(store: &InMemoryBackend, repo: &Repository, params: KdfParams) -> String {
    let mut slot = KeyFile::create(repo.key(), PASSWORD, fast_kdf(), "planted", "x").unwrap();
    slot.kdf.params = params;
    let bytes = slot.to_bytes();
    let name = cairn_repo::Id::hash_of(&bytes).to_hex();
    store.write(FileType::Key, &name, &bytes).unwrap();
    name
}

/// The slots of the issue (2^32 passes, 4 TiB) are not tried: a wrong password is told at
/// once, naming them and how to allow them.
#[test]
fn key_slots_beyond_the_limits_are_skipped_and_named() {
    let store = Arc::new(InMemoryBackend::new());
    let repo = init(store.clone());
    let passes = plant(
        &store,
        &repo,
        KdfParams {
            memory_kib: 64,
            iterations: u32::MAX,
            parallelism: 1,
        },
    );
    let memory = plant(
        &store,
        &repo,
        KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        },
    );
    let start = Instant::now();
    let e = Repository::open(store.clone(), b"wrong").err().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
    let msg = e.to_string();
    assert!(
        msg.contains(&passes) && msg.contains(&memory) && msg.contains("--allow-costly-kdf"),
        "{msg}"
    );
    Repository::open(store, PASSWORD).unwrap();
}

/// A slot within the limits but slow (about 20 times the default) whose name sorts first is
/// tried after the repository's cheap one.
#[test]
fn the_cheapest_key_slot_is_tried_first() {
    let store = Arc::new(InMemoryBackend::new());
    let repo = init(store.clone());
    let slow = KdfParams {
        memory_kib: 8 * 1024,
        iterations: 512,
        parallelism: 1,
    };
    assert_eq!(KdfLimits::DEFAULT.exceeded_by(&slow), None);
    let ours = repo.key_id().to_owned();
    while !names(&*store, FileType::Key).iter().any(|n| *n < ours) {
        let planted = plant(&store, &repo, slow);
        if planted > ours {
            store.remove(FileType::Key, &planted).unwrap();
        }
    }
    let start = Instant::now();
    let repo = Repository::open(store, PASSWORD).unwrap();
    assert_eq!(repo.key_id(), ours);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A repository whose only slot is beyond the limits (32 lanes) opens when allowed, and init
/// refuses to make one unless allowed.
#[test]
fn costly_key_slots_open_when_allowed() {
    let lanes = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 32,
    };
    let e = Repository::init(
        Arc::new(InMemoryBackend::new()),
        PASSWORD,
        &InitOptions::default().kdf(lanes),
        &actor(),
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let store = Arc::new(InMemoryBackend::new());
    Repository::init(
        store.clone(),
        PASSWORD,
        &InitOptions::default()
            .kdf(lanes)
            .kdf_limits(KdfLimits::UNLIMITED),
        &actor(),
    )
    .unwrap();
    let e = Repository::open(store.clone(), PASSWORD).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
    assert!(e.to_string().contains("--allow-costly-kdf"), "{e}");
    let no = AtomicBool::new(false);
    let allowed = OpenOptions::default().allow_costly_kdf(true);
    Repository::open_with(store.clone(), PASSWORD, &allowed, &no).unwrap();
    let limited = init(Arc::new(InMemoryBackend::new()));
    let e = limited.add_key(b"x", lanes, &actor()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let cancelled = AtomicBool::new(true);
    let e = Repository::open_with(store, PASSWORD, &allowed, &cancelled)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Interrupted);
}
