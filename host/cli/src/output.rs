//! Writing data to stdout: lines, JSON, tables, sizes. (Logs and progress go to stderr.)

use std::io::Write;

use serde::Serialize;
use std::io::Result;

/// Writes one line of data to stdout.
pub fn line(s: impl AsRef<str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_ref().as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes a value as one line of JSON to stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    line(serde_json::to_string(value).map_err(std::io::Error::other)?)
}

/// Writes a value as pretty JSON to stdout.
pub fn json_pretty<T: Serialize>(value: &T) -> Result<()> {
    line(serde_json::to_string_pretty(value).map_err(std::io::Error::other)?)
}

/// Writes raw bytes to stdout.
pub fn raw(data: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)?;
    out.flush()?;
    Ok(())
}

/// The terminal's width when stdout is one (tables then fit it; piped output is whole).
fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    term.is_term()
        .then(|| term.size_checked().map(|(_, w)| usize::from(w)))
        .flatten()
}

/// `s` cut to `width` characters, with `…` where it was cut.
fn fit(s: String, width: usize) -> String {
    if s.chars().count() <= width {
        return s;
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A plain text table with aligned columns; on a terminal, the last column is cut to fit.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let before_last: usize = widths.iter().rev().skip(1).map(|w| w + 2).sum();
    let last_width = terminal_width().map(|w| w.saturating_sub(before_last).max(10));
    if let (Some(w), Some(last)) = (last_width, widths.last_mut()) {
        *last = (*last).min(w);
    }
    let fmt = |cells: Vec<String>| {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    match last_width {
                        Some(w) => fit(c, w),
                        None => c,
                    }
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    line(fmt(header.iter().map(|s| (*s).to_owned()).collect()))?;
    line("-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len().saturating_sub(1))))?;
    for r in rows {
        line(fmt(r.clone()))?;
    }
    Ok(())
}

/// `1.5 GiB` style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", UNITS[u])
    }
}

/// A timestamp in the local time zone, to the second.
pub fn time(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `ls -l`'s mode column: the type, then `rwx` for owner, group and others.
pub fn mode_string(n: &cairn_repo::Node) -> String {
    use cairn_repo::NodeKind;
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if n.mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// `ls -l`'s line of `n` at `path`: mode, owner, group, size, time, path (and link target).
pub fn long_line(path: &str, n: &cairn_repo::Node) -> String {
    let link = n
        .link_target
        .as_ref()
        .map(|t| format!(" -> {}", t.display()))
        .unwrap_or_default();
    format!(
        "{} {:>8} {:>8} {:>12} {} {path}{link}",
        mode_string(n),
        n.user.clone().unwrap_or_else(|| n.uid.to_string()),
        n.group.clone().unwrap_or_else(|| n.gid.to_string()),
        n.size,
        time(node_time(n.mtime)),
    )
}

/// A node as restic's `ls --json` and `find --json` print it (and cairn's owner names and
/// link target).
#[derive(Serialize)]
pub struct NodeJson<'a> {
    name: String,
    #[serde(rename = "type")]
    kind: cairn_repo::NodeKind,
    path: &'a str,
    uid: u32,
    gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    /// None for a directory (restic leaves it out), unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    mode: u32,
    permissions: String,
    mtime: String,
    atime: String,
    ctime: String,
    inode: u64,
    /// `find`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<u64>,
    /// `find`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
    /// `ls`'s: `node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub struct_type: Option<&'static str>,
    /// `ls`'s: `node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<&'static str>,
}

impl<'a> NodeJson<'a> {
    /// `n` at `path`.
    pub fn new(path: &'a str, n: &'a cairn_repo::Node) -> Self {
        let time = |ns: i64| node_time(ns).to_string();
        NodeJson {
            name: n.name.display(),
            kind: n.kind,
            path,
            uid: n.uid,
            gid: n.gid,
            user: n.user.as_deref(),
            group: n.group.as_deref(),
            size: (n.kind != cairn_repo::NodeKind::Dir).then_some(n.size),
            mode: n.mode,
            permissions: mode_string(n),
            mtime: time(n.mtime),
            atime: time(n.atime),
            ctime: time(n.ctime),
            inode: n.inode,
            device_id: None,
            links: None,
            link_target: n.link_target.as_ref().map(|t| t.display()),
            struct_type: None,
            message_type: None,
        }
    }
}

/// A snapshot as `snapshots --json` prints it (restic's shape): its fields, `id` and
/// `short_id`.
pub fn snapshot_json(id: &cairn_repo::Id, snap: &cairn_repo::Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(snap).unwrap_or_default();
    v["id"] = serde_json::json!(id);
    v["short_id"] = serde_json::json!(id.short());
    v
}

/// A node's time (ns since the epoch, as stored).
pub fn node_time(ns: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(super::fit("abcdef".into(), 4), "abc…");
        assert_eq!(super::fit("abc".into(), 4), "abc");
    }

    #[test]
    fn sizes() {
        assert_eq!(super::bytes(10), "10 B");
        assert_eq!(super::bytes(1536), "1.500 KiB");
    }
}
