//! A mutation fuzzer for the decoders, bounded so that it runs with the suite.
//!
//! Seeds are real objects of a tiny repository, committed under `tests/fuzz-corpus/<kind>/`
//! (remake them with `CAIRN_WRITE_FUZZ_CORPUS=1 cargo test -p cairn-repo --test all --
//! write_fuzz_corpus`).
//! Each input is a seed with one to four mutations (bit flips, interesting bytes, truncation,
//! insertion, deletion, splices from other seeds, repeated ranges, 32/64-bit length fields
//! set to huge values, and for JSON huge numbers, deep nesting and format tokens), fed to a
//! decoder; the property is no panic and no single allocation above [`ALLOCATION_CAP`].
//! Sealed objects are fuzzed at every layer: as stored (the envelope), after opening
//! (re-sealed with the corpus key so that the mutation reaches the encoding byte and zstd),
//! and as JSON (re-compressed and re-sealed, so that it reaches the parser). Key slots are
//! parsed only: their KDF is never run with fuzzed parameters.
//!
//! Each decoder runs for `CAIRN_FUZZ_SECS` seconds (default 1.5), or for exactly
//! `CAIRN_FUZZ_ITERS` inputs when that is set. Inputs are reproducible: input `i` of a target
//! depends only on the target's name and `i`; a failing input is written to the temporary
//! directory and its path is in the failure.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cairn_repo::crypto::MasterKey;
use cairn_repo::format::config::Config;
use cairn_repo::format::index::IndexFile;
use cairn_repo::format::keyfile::KeyFile;
use cairn_repo::format::lock::LockFile;
use cairn_repo::format::pack::{BlobEntry, BlobLimits, BlobType, open_blob, parse_header};
use cairn_repo::format::snapshot::Snapshot;
use cairn_repo::index::Index;
use cairn_repo::{Backend, FileType, Id, Repository, Tree};
use cairn_testing::InMemoryBackend;
use cairn_testing::alloc::largest_allocation;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;

use crate::support::PASSWORD;

/// No decoder may ask for more than this in one allocation, whatever its input.
const ALLOCATION_CAP: usize = 256 * 1024 * 1024;

/// Blob limits of a repository with the default chunker (8 MiB blobs at most).
const LIMITS: BlobLimits = BlobLimits {
    data: 8 << 20,
    tree: BlobLimits::MAX_TREE,
};
/// Inputs grow no larger than this.
const MAX_INPUT: usize = 1024 * 1024;
const HEADER_AAD: &[u8] = b"cairn/pack-header";
const ENTRY_LEN: usize = 42;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

fn read_dir(kind: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(kind))
        .unwrap_or_else(|e| panic!("fuzz corpus {kind}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The corpus repository, opened: its key slots and config in memory.
struct Corpus {
    repo: Repository,
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let backend = Arc::new(InMemoryBackend::new());
        for slot in read_dir("key") {
            backend
                .write(FileType::Key, &Id::hash_of(&slot).to_hex(), &slot)
                .unwrap();
        }
        let config = read_dir("config").remove(0);
        backend.write(FileType::Config, "config", &config).unwrap();
        let repo = Repository::open(backend, PASSWORD).expect("the corpus opens");
        Corpus { repo }
    })
}

fn key() -> &'static MasterKey {
    corpus().repo.key()
}

fn aad(tpe: FileType) -> Vec<u8> {
    format!("cairn/{}", tpe.noun()).into_bytes()
}

// ---- Mutations ----

const JSON_TOKENS: &[&str] = &[
    "null",
    "{}",
    "[]",
    "\"\"",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "4294967296",
    "\"..\"",
    "\"a/b\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"nodes\":",
    "\"type\":\"dir\"",
    "\"subtree\":",
    "\"content\":[",
    "\"packs\":[",
    "\"blobs\":[",
    "\"memory_kib\":4294967295",
    "\"pack_size\":0",
    ",",
    ":",
    "\"",
    "\\",
];

const HUGE: &[u64] = &[
    u32::MAX as u64,
    0x8000_0000,
    0x7fff_ffff,
    0x1_0000_0000,
    u64::MAX,
    0,
];

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, seeds: &[Vec<u8>], json: bool) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        let pos = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..if json { 12 } else { 9 }) {
            0 if len > 0 => input[pos] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => {
                input[pos] = [0, 0xff, 0x7f, 0x80, 1, rng.random()][rng.random_range(0..6)];
            }
            2 => input.truncate(rng.random_range(0..=len)),
            3 => {
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(pos..pos, bytes);
            }
            4 if len > 0 => {
                let end = rng.random_range(pos..=len.min(pos + 64));
                input.drain(pos..end);
            }
            5 => {
                // Splice a range of another seed over a range of this input.
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = rng.random_range(a..=other.len().min(a + 256));
                    let end = rng.random_range(pos..=len.min(pos + 256));
                    input.splice(pos..end, other[a..b].iter().copied());
                }
            }
            6 if len >= 4 => {
                // A length field blown up: 4 or 8 little-endian bytes, anywhere (also the end).
                let v = HUGE[rng.random_range(0..HUGE.len())];
                let width = if rng.random_bool(0.5) { 4 } else { 8 }.min(len);
                let at = if rng.random_bool(0.25) {
                    len - width
                } else {
                    rng.random_range(0..=len - width)
                };
                input[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            7 if len > 0 => {
                // A range repeated.
                let end = rng.random_range(pos..=len.min(pos + 64));
                let chunk = input[pos..end].to_vec();
                for _ in 0..rng.random_range(1..=32) {
                    input.splice(pos..pos, chunk.iter().copied());
                }
            }
            8 if len > 0 => {
                let width = rng.random_range(1..=8).min(len - pos);
                for b in &mut input[pos..pos + width] {
                    *b = rng.random();
                }
            }
            9 => {
                // A number replaced by a huge or odd one.
                if let Some(start) = (pos..len).find(|&i| input[i].is_ascii_digit()) {
                    let end = (start..len)
                        .find(|&i| !input[i].is_ascii_digit())
                        .unwrap_or(len);
                    let n = [
                        "18446744073709551616",
                        "4294967296",
                        "-1",
                        "1e999",
                        "0",
                        "1.5",
                    ][rng.random_range(0..6)];
                    input.splice(start..end, n.bytes());
                }
            }
            10 => {
                let depth = rng.random_range(1..=300);
                let open = if rng.random_bool(0.5) { b'[' } else { b'{' };
                input.splice(pos..pos, std::iter::repeat_n(open, depth));
            }
            11 => {
                let t = JSON_TOKENS[rng.random_range(0..JSON_TOKENS.len())];
                input.splice(pos..pos, t.bytes());
            }
            _ => {}
        }
        input.truncate(MAX_INPUT);
    }
}

// ---- The loop ----

fn budget() -> (Option<u64>, Duration) {
    let iters = std::env::var("CAIRN_FUZZ_ITERS")
        .ok()
        .map(|v| v.parse().expect("CAIRN_FUZZ_ITERS is a number"));
    let secs = std::env::var("CAIRN_FUZZ_SECS")
        .ok()
        .map_or(1.5, |v| v.parse().expect("CAIRN_FUZZ_SECS is a number"));
    (iters, Duration::from_secs_f64(secs))
}

/// What one target did.
struct Outcome {
    execs: u64,
    accepted: u64,
}

/// Feeds `seeds` unchanged (each must be accepted), then mutated inputs, to `decode`, which
/// says whether it accepted the input. Returns the counts.
fn fuzz_target(
    name: &str,
    seeds: &[Vec<u8>],
    json: bool,
    share: f64,
    decode: impl Fn(&[u8]) -> bool,
) -> Outcome {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let run = |input: &[u8], what: &str| -> bool {
        let (result, largest) =
            largest_allocation(|| catch_unwind(AssertUnwindSafe(|| decode(input))));
        let keep = |why: String| -> ! {
            let path = std::env::temp_dir().join(format!("cairn-fuzz-{name}-{what}"));
            std::fs::write(&path, input).unwrap();
            panic!(
                "{name}: {why} on {what} (input saved as {})",
                path.display()
            );
        };
        if largest > ALLOCATION_CAP {
            keep(format!("an allocation of {largest} bytes"));
        }
        result.unwrap_or_else(|_| keep("a panic".into()))
    };
    for (i, s) in seeds.iter().enumerate() {
        assert!(
            run(s, &format!("seed-{i}")),
            "{name}: seed {i} is not accepted"
        );
    }
    let (iters, time) = budget();
    let time = time.mul_f64(share);
    let start = Instant::now();
    let name_hash = u64::from_le_bytes(
        blake3::hash(name.as_bytes()).as_bytes()[..8]
            .try_into()
            .unwrap(),
    );
    let mut out = Outcome {
        execs: seeds.len() as u64,
        accepted: seeds.len() as u64,
    };
    for i in 0.. {
        match iters {
            Some(n) if i >= n => break,
            None if start.elapsed() >= time => break,
            _ => {}
        }
        let mut rng = StdRng::seed_from_u64(name_hash ^ i);
        let mut input = seeds[rng.random_range(0..seeds.len())].clone();
        mutate(&mut rng, &mut input, seeds, json);
        out.execs += 1;
        if run(&input, &format!("input-{i}")) {
            out.accepted += 1;
        }
    }
    out
}

#[expect(clippy::print_stderr, reason = "the figures are the test's report")]
fn report(decoder: &str, targets: &[(&str, Outcome)]) {
    let total: u64 = targets.iter().map(|t| t.1.execs).sum();
    let parts: Vec<String> = targets
        .iter()
        .map(|(n, o)| format!("{n} {} ({} accepted)", o.execs, o.accepted))
        .collect();
    eprintln!("fuzz: {decoder}: {total} executions: {}", parts.join(", "));
}

// ---- Sealed metadata at three layers ----

fn open_plain(tpe: FileType, sealed: &[u8]) -> Vec<u8> {
    key().open(sealed, &aad(tpe)).expect("corpus file opens")
}

fn json_of(tpe: FileType, sealed: &[u8]) -> Vec<u8> {
    let plain = open_plain(tpe, sealed);
    assert_eq!(plain[0], 1, "zstd JSON");
    zstd::stream::decode_all(&plain[1..]).unwrap()
}

fn seal_json(tpe: FileType, json: &[u8]) -> Vec<u8> {
    let mut plain = vec![1];
    plain.extend(zstd::bulk::compress(json, 3).unwrap());
    key().seal(&plain, &aad(tpe))
}

/// Decodes `bytes` as the repository does a file of type `tpe` (sealed, zstd, JSON, capped).
fn load_as<T: DeserializeOwned>(tpe: FileType, bytes: &[u8]) -> Option<T> {
    let name = Id::hash_of(bytes).to_hex();
    cairn_repo::format::decode_file::<T>(key(), tpe, &name, bytes).ok()
}

fn fuzz_sealed<T: DeserializeOwned>(
    kind: &str,
    tpe: FileType,
    accept: impl Fn(T) -> bool,
) -> Vec<(&'static str, Outcome)> {
    let sealed = read_dir(kind);
    let plain: Vec<Vec<u8>> = sealed.iter().map(|s| open_plain(tpe, s)).collect();
    let json: Vec<Vec<u8>> = sealed.iter().map(|s| json_of(tpe, s)).collect();
    let accept = &accept;
    let load = |bytes: &[u8]| load_as::<T>(tpe, bytes).is_some_and(accept);
    vec![
        (
            "json",
            fuzz_target(&format!("{kind}-json"), &json, true, 0.5, |j| {
                load(&seal_json(tpe, j))
            }),
        ),
        (
            "opened",
            fuzz_target(&format!("{kind}-opened"), &plain, false, 0.25, |p| {
                load(&key().seal(p, &aad(tpe)))
            }),
        ),
        (
            "sealed",
            fuzz_target(&format!("{kind}-sealed"), &sealed, false, 0.25, |s| load(s)),
        ),
    ]
}

#[test]
fn fuzz_index_decoder() {
    let t = fuzz_sealed::<IndexFile>("index", FileType::Index, |f| {
        let index = Index::default();
        for p in &f.packs {
            index.add_pack(p);
        }
        true
    });
    report("index", &t);
}

#[test]
fn fuzz_snapshot_decoder() {
    let t = fuzz_sealed::<Snapshot>("snapshot", FileType::Snapshot, |_| true);
    report("snapshot", &t);
}

#[test]
fn fuzz_config_decoder() {
    // A config that parses but is out of range is refused by `validate`, as `open` does.
    let t = fuzz_sealed::<Config>("config", FileType::Config, |c| c.validate().is_ok());
    report("config", &t);
}

#[test]
fn fuzz_lock_decoder() {
    let t = fuzz_sealed::<LockFile>("lock", FileType::Lock, |_| true);
    report("lock", &t);
}

// ---- Key slots (plain JSON; parse only, never the KDF) ----

#[test]
fn fuzz_key_slot_decoder() {
    let seeds = read_dir("key");
    let o = fuzz_target("key", &seeds, true, 1.0, |b| {
        KeyFile::from_bytes("fuzzed", b).is_ok()
    });
    report("key slot", &[("json", o)]);
}

// ---- Trees and packs ----

fn packs() -> Vec<(Id, Vec<u8>, Vec<BlobEntry>)> {
    read_dir("pack")
        .into_iter()
        .map(|p| {
            let id = Id::hash_of(&p);
            let entries = parse_header(key(), &id, p.len() as u64, &p)
                .unwrap()
                .unwrap();
            (id, p, entries)
        })
        .collect()
}

#[test]
fn fuzz_tree_decoder() {
    let plain = read_dir("tree");
    let mut sealed = Vec::new();
    let mut entries = Vec::new();
    for (id, pack, es) in packs() {
        for e in es.into_iter().filter(|e| e.tpe == BlobType::Tree) {
            sealed.push(pack[e.offset as usize..(e.offset + e.length) as usize].to_vec());
            entries.push((id, e));
        }
    }
    let json = fuzz_target("tree-json", &plain, true, 0.7, |b| {
        Tree::from_bytes(&Id::default(), b).is_ok()
    });
    // As stored in a pack: each mutated blob is opened with the entry of the seed it came
    // from (the first whose length it still has, else the first), then parsed.
    let sealed_out = fuzz_target("tree-sealed", &sealed, false, 0.3, |s| {
        let (pack, e) = entries
            .iter()
            .find(|(_, e)| e.length as usize == s.len())
            .unwrap_or(&entries[0]);
        open_blob(key(), LIMITS, e, s, pack).is_ok_and(|p| Tree::from_bytes(&e.id, &p).is_ok())
    });
    report("tree", &[("json", json), ("sealed blob", sealed_out)]);
}

/// A pack's header as plaintext entries, the bytes the header decoder reads after opening.
fn header_plain(entries: &[BlobEntry]) -> Vec<u8> {
    let mut h = Vec::new();
    for e in entries {
        h.push(match e.tpe {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        });
        h.push(u8::from(e.compressed));
        h.extend_from_slice(&e.length.to_le_bytes());
        h.extend_from_slice(&e.raw_length.to_le_bytes());
        h.extend_from_slice(&e.id.0);
    }
    assert_eq!(h.len(), entries.len() * ENTRY_LEN);
    h
}

/// Parses a pack's header as readers do: the last 64 KiB, then more if the header says so;
/// then opens every blob the header lists.
fn read_pack(pack: &[u8]) -> bool {
    let id = Id::hash_of(pack);
    let size = pack.len() as u64;
    let tail = |n: u64| &pack[pack.len() - n as usize..];
    let first = (64 * 1024).min(size);
    let entries = match parse_header(key(), &id, size, tail(first)) {
        Ok(Ok(e)) => e,
        Ok(Err(need)) if need <= size => match parse_header(key(), &id, size, tail(need)) {
            Ok(Ok(e)) => e,
            _ => return false,
        },
        _ => return false,
    };
    entries.iter().all(|e| {
        let blob = &pack[e.offset as usize..(e.offset + e.length) as usize];
        open_blob(key(), LIMITS, e, blob, &id).is_ok()
    })
}

#[test]
fn fuzz_pack_header_decoder() {
    let packs = packs();
    let plain: Vec<Vec<u8>> = packs.iter().map(|(_, _, e)| header_plain(e)).collect();
    // The largest seed's blob area, so that every seed's entries fit.
    let area: u64 = packs
        .iter()
        .map(|(_, _, e)| e.iter().map(|b| u64::from(b.length)).sum())
        .max()
        .unwrap();
    // Plaintext entries, sealed as a header, parsed as the end of a pack with that blob area.
    let header = fuzz_target("pack-header-plain", &plain, false, 0.6, |h| {
        let mut tail = key().seal(h, HEADER_AAD);
        let len = u32::try_from(tail.len()).unwrap();
        tail.extend_from_slice(&len.to_le_bytes());
        let size = area + tail.len() as u64;
        matches!(parse_header(key(), &Id::default(), size, &tail), Ok(Ok(_)))
    });
    let whole: Vec<Vec<u8>> = packs.into_iter().map(|(_, p, _)| p).collect();
    let sealed = fuzz_target("pack-sealed", &whole, false, 0.4, read_pack);
    report(
        "pack header",
        &[("plaintext entries", header), ("whole pack", sealed)],
    );
}

/// A compressed blob whose entry claims a huge plaintext (a header or index with that entry
/// authenticates only under the key, but a writer's bug or a key holder can make one): opening
/// it must not reserve that much up front. Today `open_blob` asks zstd for a buffer of
/// `raw_length` bytes (4 GiB here) before decompressing.
#[test]
fn compressed_blob_claiming_a_huge_plaintext_allocates_within_the_cap() {
    let (id, pack, entries) = packs()
        .into_iter()
        .find(|(_, _, es)| es.iter().any(|e| e.compressed))
        .expect("the corpus holds a compressed blob");
    let e = entries.iter().find(|e| e.compressed).unwrap();
    let sealed = &pack[e.offset as usize..(e.offset + e.length) as usize];
    let mut huge = *e;
    huge.raw_length = u32::MAX;
    let (opened, largest) =
        largest_allocation(|| open_blob(key(), LIMITS, &huge, sealed, &id).is_ok());
    assert!(!opened, "the length does not match");
    assert!(
        largest <= ALLOCATION_CAP,
        "an allocation of {largest} bytes"
    );
}

// ---- The corpus ----

/// Writes the corpus from a new tiny repository (run by hand; the corpus is committed).
#[test]
fn write_fuzz_corpus() {
    // Only when asked: the corpus is committed.
    if std::env::var_os("CAIRN_WRITE_FUZZ_CORPUS").is_none() {
        return;
    }
    use cairn_repo::ops::backup::BackupOptions;
    use cairn_testing::fixture::random_bytes;

    use crate::support::{actor, backup_volume_twice, init};

    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("a.txt"), "hello cairn\n".repeat(20)).unwrap();
    std::fs::write(root.join("dir/b.bin"), random_bytes(2000, 5)).unwrap();
    std::fs::write(root.join("dir/sub/c"), b"").unwrap();
    std::fs::write(root.join("caf\u{e9}"), b"x").unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("dir/link")).unwrap();
    let be = Arc::new(InMemoryBackend::new());
    let repo = init(be.clone());
    let mut opts = BackupOptions::new(actor());
    opts.tags = vec!["fuzz".into()];
    backup_volume_twice(&repo, root, "fuzz/corpus", opts);
    let guard = cairn_repo::lock::lock(&repo, false, &actor(), 4242).unwrap();
    let dir = corpus_dir();
    let _ = std::fs::remove_dir_all(&dir);
    for (tpe, kind) in [
        (FileType::Config, "config"),
        (FileType::Key, "key"),
        (FileType::Snapshot, "snapshot"),
        (FileType::Index, "index"),
        (FileType::Pack, "pack"),
        (FileType::Lock, "lock"),
    ] {
        std::fs::create_dir_all(dir.join(kind)).unwrap();
        for (name, _) in be.list(tpe).unwrap() {
            std::fs::write(dir.join(kind).join(&name), be.read(tpe, &name).unwrap()).unwrap();
        }
    }
    drop(guard);
    // Trees as the tree decoder reads them (opened blobs).
    let indexed = repo.to_indexed().unwrap();
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    for loc in indexed.index().all() {
        if loc.entry.tpe == BlobType::Tree {
            let plain = indexed.read_blob(&loc.entry.id).unwrap();
            std::fs::write(dir.join("tree").join(loc.entry.id.to_hex()), plain).unwrap();
        }
    }
}
