//! `cairn backup`

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupSource, ParentChoice, backup};
use cairn_repo::{Compression, Error, FileType};

use crate::Outcome;
use crate::args::{BackupArgs, CompressionArg};
use crate::output;
use crate::progress::{Mode, Progress};
use crate::settings::Ctx;

mod volumes;

/// The lines of a list file, without their line ends (`\n` or `\r\n`).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// The entries of a list file: its lines less empty lines and `#` comments (an exclude
/// file, `--files-from`).
fn entries(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    lines(text).filter(|l| !l.trim_ascii().is_empty() && !l.trim_ascii_start().starts_with(b"#"))
}

/// The `--exclude` patterns and those of the `--exclude-file` files.
pub(super) fn read_exclude_files(
    exclude: &[String],
    files: &[std::path::PathBuf],
) -> Result<Vec<String>> {
    let mut out = exclude.to_vec();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the exclude file {}", f.display()))?;
        // (Split at ASCII bytes, each entry is still UTF-8.)
        out.extend(
            entries(text.as_bytes())
                .filter_map(|l| std::str::from_utf8(l).ok())
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(out)
}

/// The paths given, then those of `--files-from` (a glob pattern a line; white space around
/// it, empty lines and `#` comments skipped), `--files-from-verbatim` (a path a line) and
/// `--files-from-raw` (NUL-separated), as restic reads them.
fn paths(args: &BackupArgs) -> Result<Vec<PathBuf>> {
    let mut out = args.paths.clone();
    let read = |f: &PathBuf| {
        std::fs::read(f).with_context(|| format!("cannot read the file list {}", f.display()))
    };
    for f in &args.files_from {
        for line in entries(&read(f)?) {
            let pattern = std::str::from_utf8(line.trim_ascii()).map_err(|_| {
                anyhow!(
                    "a line of the file list {} is not UTF-8; list such paths with \
                     --files-from-verbatim or --files-from-raw",
                    f.display()
                )
            })?;
            out.extend(expand(pattern, f)?);
        }
    }
    for f in &args.files_from_verbatim {
        let text = read(f)?;
        out.extend(
            lines(&text)
                .filter(|l| !l.is_empty())
                .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))),
        );
    }
    for f in &args.files_from_raw {
        let raw = read(f)?;
        out.extend(
            raw.split(|b| *b == 0)
                .filter(|l| !l.is_empty())
                .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))),
        );
    }
    Ok(out)
}

/// The paths `pattern` (a line of the `--files-from` file `list`) matches, in order; none is a
/// warning. `*` and `?` stay within a path segment, `**` crosses them, dot files match.
fn expand(pattern: &str, list: &Path) -> Result<Vec<PathBuf>> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let bad = |e: &dyn std::fmt::Display| {
        anyhow!(
            "`{pattern}` in the file list {} is not a valid pattern: {e}",
            list.display()
        )
    };
    let mut found = Vec::new();
    for entry in glob::glob_with(pattern, options).map_err(|e| bad(&e))? {
        match entry {
            Ok(path) => found.push(path),
            // A directory it cannot read on the way: what it can read still counts (restic
            // passes over these too).
            Err(e) => tracing::warn!(
                "`{pattern}` in the file list {}: cannot read {}: {}",
                list.display(),
                e.path().display(),
                e.error()
            ),
        }
    }
    if found.is_empty() {
        tracing::warn!(
            "`{pattern}` in the file list {} matches no file; skipped",
            list.display()
        );
    }
    Ok(found)
}

/// The options every backup of this command shares (the parent is chosen per source).
fn options(ctx: &Ctx, args: &BackupArgs) -> Result<BackupOptions> {
    let mut actor = ctx.actor();
    if let Some(h) = &args.host {
        actor.hostname = h.clone();
    }
    let mut opts = BackupOptions::new(actor);
    opts.uid_gid = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    opts.tags = args.tag.iter().filter(|t| !t.is_empty()).cloned().collect();
    opts.app = args.app.clone();
    opts.excludes = read_exclude_files(&args.exclude, &args.exclude_file)?;
    opts.one_file_system = args.one_file_system;
    opts.dry_run = args.dry_run;
    opts.compression = match args.compression {
        CompressionArg::Off => Compression::Off,
        CompressionArg::Auto => Compression::Auto,
        CompressionArg::Max => Compression::Max,
    };
    if args.force {
        opts.parent = ParentChoice::None;
    }
    if let Some(t) = &args.time {
        opts.time = Some(
            t.parse()
                .map_err(|e| anyhow!("--time `{t}` is not an RFC 3339 time: {e}"))?,
        );
    }
    Ok(opts)
}

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result<Outcome> {
    let mut opts = options(ctx, &args)?;
    if !args.volume.is_empty() || args.all_discovered || !args.for_app.is_empty() || args.all_apps {
        return volumes::run(ctx, &args, opts);
    }
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, false)?;
    let repo = repo.to_indexed()?;
    if !args.force {
        opts.parent = match &args.parent {
            Some(p) => ParentChoice::Snapshot(repo.find_id(FileType::Snapshot, p)?),
            None => ParentChoice::Latest,
        };
    }
    let source = if args.stdin_from_command {
        let (prog, rest) = args
            .command
            .split_first()
            .ok_or_else(|| anyhow!("--stdin-from-command needs a command after `--`"))?;
        let mut child = Command::new(prog)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run `{prog}`"))?;
        let out = child.stdout.take().expect("piped stdout");
        let name = prog.clone();
        BackupSource::Stream {
            filename: args.stdin_filename.clone(),
            reader: Box::new(out) as Box<dyn Read + Send>,
            finish: Some(Box::new(move || {
                let status = child
                    .wait()
                    .map_err(|e| Error::io(format!("cannot wait for `{name}`"), e))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(Error::invalid(format!(
                        "`{name}` failed ({status}); no snapshot was saved"
                    )))
                }
            })),
        }
    } else if let Some(location) = &args.bucket {
        let bucket = ctx.bucket(location, None)?;
        BackupSource::Objects(Box::new(bucket))
    } else if args.stdin {
        BackupSource::Stream {
            filename: args.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
            finish: None,
        }
    } else {
        let paths = paths(&args)?;
        if paths.is_empty() {
            bail!(
                "nothing to back up: give paths (or --files-from), --bucket, --stdin or \
                 --stdin-from-command"
            );
        }
        BackupSource::Paths(paths)
    };

    let progress = Progress::new(Mode::choose(ctx.global.quiet, ctx.global.json));
    let result = backup(&repo, source, &opts, &progress, ctx.cancel());
    progress.finish();
    let outcome = result?;
    report(ctx, &outcome, args.dry_run, None)?;
    if outcome
        .snapshot
        .summary
        .as_ref()
        .is_some_and(|s| s.errors > 0)
    {
        tracing::warn!(
            "{} entries could not be read; the snapshot is incomplete",
            outcome.snapshot.summary.as_ref().map_or(0, |s| s.errors)
        );
        return Ok(Outcome::Incomplete);
    }
    Ok(Outcome::Ok)
}

/// Prints what one backup did: a summary line (JSON) or a few lines of text.
pub(super) fn report(
    ctx: &Ctx,
    outcome: &BackupOutcome,
    dry_run: bool,
    volume: Option<&str>,
) -> Result<()> {
    let s = outcome.snapshot.summary.clone().unwrap_or_default();
    if ctx.global.json {
        output::json(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": outcome.id,
            "dry_run": dry_run,
            "volume": volume,
            "app": outcome.snapshot.app,
            "parent": outcome.snapshot.parent,
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new,
            "dirs_changed": s.dirs_changed,
            "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "data_added": s.data_added,
            "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed,
            "total_bytes_processed": s.total_bytes_processed,
            "errors": s.errors,
            "total_duration": s.duration_seconds,
        }))?;
    } else if !ctx.global.quiet {
        let snap = &outcome.snapshot;
        if let Some(v) = volume {
            output::line(format!("volume {v}:"))?;
        }
        if let Some(p) = snap.parent {
            output::line(format!("using parent snapshot {}", p.short()))?;
        }
        output::line(format!(
            "Files: {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        ))?;
        output::line(format!(
            "Dirs:  {} new, {} changed, {} unmodified",
            s.dirs_new, s.dirs_changed, s.dirs_unmodified
        ))?;
        output::line(format!(
            "Added to the repository: {} ({} stored)",
            output::bytes(s.data_added),
            output::bytes(s.data_added_packed)
        ))?;
        output::line(format!(
            "processed {} files, {} in {:.2}s",
            s.total_files_processed,
            output::bytes(s.total_bytes_processed),
            s.duration_seconds
        ))?;
        match outcome.id {
            Some(id) => output::line(format!("snapshot {} saved", id.short()))?,
            None => output::line("dry run: nothing was saved")?,
        }
    }
    Ok(())
}
