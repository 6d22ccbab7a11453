//! `forget`: which snapshots a retention policy keeps, with the reason for each.
//!
//! Semantics follow restic's so that policies mean what users already think: snapshots are
//! grouped (by default by host, paths and app), and within a group, newest first, each rule
//! keeps the newest snapshot of each of its `n` most recent buckets (hours, days, ISO weeks,
//! months, years — in the given time zone; `last` treats every snapshot as its own bucket).
//! `within D` keeps every snapshot taken within D of the group's newest; `within-daily D` etc.
//! keep the newest of each bucket within D; a snapshot with a kept tag is always kept. A
//! snapshot is kept when any rule keeps it.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;

/// How many buckets a rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// The newest `n`.
    N(u32),
    /// All of them.
    Unlimited,
}

/// A calendar duration: years, months, days, hours (restic's `1y2m3d4h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CalendarDuration {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl CalendarDuration {
    /// Parses `1y2m3d4h` (any subset, in any order; `m` is months).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the text.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "`{s}` is not a duration like 1y2m3d4h (years, months, days, hours)"
            ))
        };
        let mut d = Self::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || d == Self::default() {
            return Err(bad());
        }
        Ok(d)
    }

    fn span(self) -> Span {
        Span::new()
            .years(self.years)
            .months(self.months)
            .days(self.days)
            .hours(self.hours)
    }
}

impl std::fmt::Display for CalendarDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// The kinds of bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    /// Every snapshot is its own bucket.
    Last,
    /// Clock hours.
    Hourly,
    /// Calendar days.
    Daily,
    /// ISO weeks.
    Weekly,
    /// Calendar months.
    Monthly,
    /// Calendar years.
    Yearly,
}

impl Period {
    const ALL: [Period; 6] = [
        Period::Last,
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    fn name(self) -> &'static str {
        match self {
            Period::Last => "last",
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    fn bucket(self, t: &Zoned, index: usize) -> i64 {
        let d = t.date();
        match self {
            Period::Last => index as i64,
            Period::Hourly => {
                (i64::from(d.year()) * 1000 + i64::from(d.day_of_year())) * 100
                    + i64::from(t.hour())
            }
            Period::Daily => i64::from(d.year()) * 1000 + i64::from(d.day_of_year()),
            Period::Weekly => {
                let w = d.iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Period::Monthly => i64::from(d.year()) * 100 + i64::from(d.month()),
            Period::Yearly => i64::from(d.year()),
        }
    }
}

/// A retention policy.
#[derive(Debug, Clone, Default)]
pub struct KeepPolicy {
    /// `--keep-last`, `--keep-hourly` … `--keep-yearly`.
    pub counts: BTreeMap<Period, Count>,
    /// `--keep-within`.
    pub within: Option<CalendarDuration>,
    /// `--keep-within-hourly` … `--keep-within-yearly`.
    pub within_buckets: BTreeMap<Period, CalendarDuration>,
    /// `--keep-tag`: snapshots with any of these tags are kept.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// Whether no rule is set (such a policy would remove everything).
    pub fn is_empty(&self) -> bool {
        self.counts.values().all(|c| *c == Count::N(0))
            && self.within.is_none()
            && self.within_buckets.is_empty()
            && self.tags.is_empty()
    }
}

/// What snapshots are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// By host.
    pub host: bool,
    /// By paths.
    pub paths: bool,
    /// By app.
    pub app: bool,
    /// By tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            app: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,app,tags` (any subset; empty: one group).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the unknown key.
    pub fn parse(s: &str) -> Result<Self> {
        let mut g = Self {
            host: false,
            paths: false,
            app: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "app" => g.app = true,
                "tags" | "tag" => g.tags = true,
                other => {
                    return Err(Error::invalid(format!(
                        "cannot group by `{other}` (use host, paths, app, tags)"
                    )));
                }
            }
        }
        Ok(g)
    }
}

/// The values a group shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// Host, when grouped by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Paths, when grouped by paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// App, when grouped by app (`Some(None)`: snapshots without an app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<Option<String>>,
    /// Tags, when grouped by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The volume identity: snapshots of a discovered volume form one group per identity
    /// (in place of host and paths, which change when a pod moves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

/// A snapshot kept, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    /// Its id.
    pub id: Id,
    /// When it was taken.
    pub time: Timestamp,
    /// The rules that keep it (e.g. `daily snapshot`, `within 7d`).
    pub reasons: Vec<String>,
}

/// One group's decision.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDecision {
    /// What the group shares.
    pub key: GroupKey,
    /// Kept, newest first.
    pub keep: Vec<Kept>,
    /// Removed, newest first.
    pub remove: Vec<(Id, Timestamp)>,
}

impl GroupKey {
    /// The group of `s` under `g`.
    pub fn of(s: &Snapshot, g: GroupBy) -> Self {
        let located = s.volume.is_none();
        GroupKey {
            hostname: (g.host && located).then(|| s.hostname.clone()),
            paths: (g.paths && located).then(|| s.paths.clone()),
            app: g.app.then(|| s.app.clone()),
            tags: g.tags.then(|| s.tags.clone()),
            volume: s.volume.clone(),
        }
    }
}

/// Orders a group's snapshots newest first (ties by id, so the order is stable).
pub fn newest_first(snaps: &mut [&(Id, Snapshot)]) {
    snaps.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
}

/// `snapshots` by their group under `g`, each group in the order given.
pub fn group(snapshots: &[(Id, Snapshot)], g: GroupBy) -> BTreeMap<GroupKey, Vec<&(Id, Snapshot)>> {
    let mut groups: BTreeMap<GroupKey, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(GroupKey::of(&s.1, g)).or_default().push(s);
    }
    groups
}

/// Applies `policy` to `snapshots`, grouped by `group_by`, with buckets in `tz`.
pub fn apply_policy(
    snapshots: &[(Id, Snapshot)],
    group_by: GroupBy,
    policy: &KeepPolicy,
    tz: &TimeZone,
) -> Vec<GroupDecision> {
    group(snapshots, group_by)
        .into_iter()
        .map(|(key, mut snaps)| {
            newest_first(&mut snaps);
            let latest = snaps[0].1.time.to_zoned(tz.clone());
            let cutoff = |d: CalendarDuration| {
                latest
                    .checked_sub(d.span())
                    .map(|z| z.timestamp())
                    .unwrap_or(Timestamp::MIN)
            };
            let mut left: BTreeMap<Period, Count> = policy.counts.clone();
            let mut last_bucket: BTreeMap<Period, i64> = BTreeMap::new();
            let mut last_within: BTreeMap<Period, i64> = BTreeMap::new();
            let mut decision = GroupDecision {
                key,
                keep: Vec::new(),
                remove: Vec::new(),
            };
            for (i, (id, snap)) in snaps.iter().map(|s| (&s.0, &s.1)).enumerate() {
                let t = snap.time.to_zoned(tz.clone());
                let mut reasons = Vec::new();
                if let Some(tag) = policy.tags.iter().find(|t| snap.tags.contains(t)) {
                    reasons.push(format!("has tag {tag}"));
                }
                for p in Period::ALL {
                    let Some(count) = left.get_mut(&p) else {
                        continue;
                    };
                    let b = p.bucket(&t, i);
                    if *count == Count::N(0) || last_bucket.get(&p) == Some(&b) {
                        continue;
                    }
                    if let Count::N(n) = count {
                        *n -= 1;
                    }
                    last_bucket.insert(p, b);
                    reasons.push(format!("{} snapshot", p.name()));
                }
                if let Some(w) = policy.within
                    && snap.time >= cutoff(w)
                {
                    reasons.push(format!("within {w}"));
                }
                for (p, w) in &policy.within_buckets {
                    let b = p.bucket(&t, i);
                    if snap.time >= cutoff(*w) && last_within.get(p) != Some(&b) {
                        last_within.insert(*p, b);
                        reasons.push(format!("{} within {w}", p.name()));
                    }
                }
                if reasons.is_empty() {
                    decision.remove.push((*id, snap.time));
                } else {
                    decision.keep.push(Kept {
                        id: *id,
                        time: snap.time,
                        reasons,
                    });
                }
            }
            decision
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// Removes the snapshots `ids` (the caller holds an exclusive lock); how many were removed.
/// A snapshot already gone (another `forget` took it) is not an error and not counted.
///
/// # Errors
/// Backend errors other than a snapshot already gone.
pub fn remove_snapshots(repo: &crate::Repository, ids: &[Id]) -> Result<usize> {
    let mut removed = 0;
    for id in ids {
        match repo
            .backend()
            .remove(crate::FileType::Snapshot, &id.to_hex())
        {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}
