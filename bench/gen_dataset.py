#!/usr/bin/env python3
"""Deterministic benchmark data sets for bench/run.sh (python3 stdlib only).

Subcommands:
  big DIR --size 2G                   one incompressible file DIR/big.bin
  small DIR --count 50000 --total 1G  many files of mixed sizes in nested dirs,
                                      about half (by bytes and by count) text-like
                                      and compressible, the rest random
  mutate FILE --percent 1             overwrite ~PERCENT % of FILE in place in
                                      scattered 4 KiB runs; the size is kept

Sizes accept K/M/G/T suffixes (binary: 1K = 1024). Output depends only on the
arguments and --seed, never on the machine, so both tools always see the same bytes.
"""

import argparse
import math
import os
import random
import sys

BLOCK = 8 << 20  # write granularity for big files


def parse_size(text):
    """'64M' -> 67108864; plain integers are bytes."""
    units = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper()
    if t.endswith("IB"):
        t = t[:-2]
    num = t.rstrip("KMGTB")
    suffix = t[len(num):]
    if suffix not in units or not num:
        raise argparse.ArgumentTypeError(f"bad size: {text!r}")
    try:
        value = float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size: {text!r}") from None
    return int(value * units[suffix])


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------- big


def cmd_big(args):
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "big.bin")
    rng = random.Random(f"big:{args.seed}")
    remaining = args.size
    with open(path + ".tmp", "wb") as f:
        while remaining > 0:
            n = min(BLOCK, remaining)
            f.write(rng.randbytes(n))
            remaining -= n
    os.replace(path + ".tmp", path)
    print(f"big: wrote {path} ({human(args.size)})")


# ------------------------------------------------------------------------- small

SYLLABLES = (
    "ka ri to mo na be lu se di pa ro ve chi zan tor mel quin fa go hu "
    "ex pre con ter al ion ment ing er ly ab ob sub trans graph data net"
).split()

EVENTS = ["login", "logout", "upload", "download", "delete", "rename", "share", "sync", "error", "retry"]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]


def make_vocabulary(rng, n=4000):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def make_line_pool(rng, n=65536):
    """A pool of text-like lines (JSON records, log lines, prose).

    Compressible files are random sequences of these lines, so every file is
    unique at chunk granularity (no artificial cross-file dedup) while still
    compressing roughly like real text/logs.
    """
    vocab = make_vocabulary(rng)
    pool = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            user = rng.choice(vocab)
            tags = ", ".join(f'"{rng.choice(vocab)}"' for _ in range(rng.randint(0, 3)))
            line = (
                f'{{"id": {rng.randint(1, 10**7)}, "user": "{user}", '
                f'"event": "{rng.choice(EVENTS)}", "ts": {1700000000 + rng.randint(0, 10**7)}, '
                f'"size": {rng.randint(0, 1 << 20)}, "tags": [{tags}], "ok": {rng.choice(["true", "false"])}}}\n'
            )
        elif kind == 1:
            msg = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 10)))
            line = (
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z "
                f"{rng.choice(LEVELS):5} [{rng.choice(vocab)}] {msg}\n"
            )
        else:
            words = [rng.choice(vocab) for _ in range(rng.randint(6, 16))]
            line = " ".join(words).capitalize() + ".\n"
        pool.append(line.encode())
    return pool


def text_bytes(rng, pool, size):
    if size == 0:
        return b""
    k = size // 60 + 2  # lines average ~70 bytes; overshoot then cut
    out = b"".join(rng.choices(pool, k=k))
    while len(out) < size:
        out += b"".join(rng.choices(pool, k=k))
    return out[:size]


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def plan_sizes(rng, count, total):
    """Mixed sizes: mostly 1-16 KiB, a few % 100 KiB-2 MiB, a handful 2-16 MiB.

    The share of medium files is solved so the expected total matches; the
    sample is then scaled to hit `total` exactly.
    """
    KiB, MiB = 1 << 10, 1 << 20
    mean_small = (16 * KiB - 1 * KiB) / math.log(16)
    mean_med = (2 * MiB - 100 * KiB) / math.log(2 * MiB / (100 * KiB))
    mean_large = (16 * MiB - 2 * MiB) / math.log(8)
    n_large = min(count, max(1 if total >= 32 * MiB else 0, round(count * 0.0003)))
    budget = total - n_large * mean_large
    # n_med * mean_med + (count - n_large - n_med) * mean_small = budget
    rest = count - n_large
    n_med = (budget - rest * mean_small) / (mean_med - mean_small)
    n_med = int(max(0, min(rest, round(n_med))))
    n_small = count - n_large - n_med
    sizes = (
        [log_uniform(rng, 1 * KiB, 16 * KiB) for _ in range(n_small)]
        + [log_uniform(rng, 100 * KiB, 2 * MiB) for _ in range(n_med)]
        + [log_uniform(rng, 2 * MiB, 16 * MiB) for _ in range(n_large)]
    )
    scale = total / max(1, sum(sizes))
    sizes = [max(1, int(s * scale)) for s in sizes]
    sizes[0] += total - sum(sizes)  # exact total (sizes[0] is a small file)
    if sizes[0] < 0:
        sizes[0] = 0
    rng.shuffle(sizes)
    return sizes


def assign_compressible(sizes):
    """Greedy: biggest first, into whichever class has fewer bytes -> ~half/half."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    flags = [False] * len(sizes)
    text_bytes_sum = rand_bytes_sum = 0
    for i in order:
        if text_bytes_sum <= rand_bytes_sum:
            flags[i] = True
            text_bytes_sum += sizes[i]
        else:
            rand_bytes_sum += sizes[i]
    return flags


def dir_for(k):
    """Directory of the k-th group of files: depth 2 or 3, ~100 files each."""
    top = f"d{k // 30:03d}"
    mid = f"s{(k // 3) % 10:02d}"
    leaf = k % 3
    return os.path.join(top, mid) if leaf == 0 else os.path.join(top, mid, f"l{leaf}")


def cmd_small(args):
    rng = random.Random(f"small:{args.seed}")
    pool = make_line_pool(random.Random(f"pool:{args.seed}"))
    sizes = plan_sizes(rng, args.count, args.total)
    compressible = assign_compressible(sizes)
    per_dir = args.per_dir
    os.makedirs(args.dir, exist_ok=True)
    made_dirs = set()
    written = n_text = b_text = 0
    for i, (size, is_text) in enumerate(zip(sizes, compressible)):
        d = os.path.join(args.dir, dir_for(i // per_dir))
        if d not in made_dirs:
            os.makedirs(d, exist_ok=True)
            made_dirs.add(d)
        if is_text:
            name = f"f{i:06d}.{('json', 'log', 'txt')[i % 3]}"
            data = text_bytes(rng, pool, size)
            n_text += 1
            b_text += size
        else:
            name = f"f{i:06d}.{('bin', 'dat')[i % 2]}"
            data = rng.randbytes(size)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        written += size
    print(
        f"small: wrote {args.count} files, {human(written)} in {len(made_dirs)} dirs under {args.dir}; "
        f"compressible: {n_text} files / {human(b_text)}"
    )


# ------------------------------------------------------------------------ mutate


def cmd_mutate(args):
    size = os.path.getsize(args.file)
    run = args.run_size
    if size == 0:
        return
    slots = max(1, size // run)
    n_runs = max(1, min(slots, round(size * args.percent / 100 / run)))
    rng = random.Random(f"mutate:{args.seed}:{size}")
    starts = sorted(s * run for s in rng.sample(range(slots), n_runs))
    changed = 0
    with open(args.file, "r+b") as f:
        for off in starts:
            n = min(run, size - off)
            f.seek(off)
            old = f.read(n)
            # XOR with random non-zero bytes: every byte in the run really changes
            mask = rng.randbytes(n).replace(b"\x00", b"\x01")
            new = (int.from_bytes(old, "little") ^ int.from_bytes(mask, "little")).to_bytes(n, "little")
            f.seek(off)
            f.write(new)
            changed += n
    print(f"mutate: changed {human(changed)} ({100 * changed / size:.2f} %) of {args.file} in {n_runs} runs")


# -------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=20240601, help="seed (default %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("big", help="one random (incompressible) file DIR/big.bin")
    b.add_argument("dir")
    b.add_argument("--size", type=parse_size, default=parse_size("2G"))
    b.set_defaults(func=cmd_big)

    s = sub.add_parser("small", help="many files of mixed size in nested dirs")
    s.add_argument("dir")
    s.add_argument("--count", type=int, default=50000)
    s.add_argument("--total", type=parse_size, default=parse_size("1G"))
    s.add_argument("--per-dir", type=int, default=100, help="files per directory (default %(default)s)")
    s.set_defaults(func=cmd_small)

    m = sub.add_parser("mutate", help="overwrite ~PERCENT %% of FILE in scattered runs")
    m.add_argument("file")
    m.add_argument("--percent", type=float, default=1.0)
    m.add_argument("--run-size", type=parse_size, default=parse_size("4K"), help="bytes per run (default 4K)")
    m.set_defaults(func=cmd_mutate)

    args = p.parse_args(argv)
    if getattr(args, "count", 1) < 1:
        p.error("--count must be >= 1")
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
