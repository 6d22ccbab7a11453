//! Retention cases computed by hand, across DST, month, ISO-week and year boundaries.

use super::*;
use crate::format::snapshot::Snapshot;

fn snap(time: &str, host: &str, tags: &[&str]) -> (Id, Snapshot) {
    let time: Timestamp = time.parse().unwrap();
    let s = Snapshot {
        time,
        hostname: host.into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        paths: vec!["/data".into()],
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        app: None,
        volume: None,
        parent: None,
        tree: Id::default(),
        excludes: Vec::new(),
        program_version: "test".into(),
        summary: None,
        original: None,
    };
    (Id::hash_of(format!("{time}{host}").as_bytes()), s)
}

fn policy(counts: &[(Period, u32)]) -> KeepPolicy {
    KeepPolicy {
        counts: counts.iter().map(|(p, n)| (*p, Count::N(*n))).collect(),
        ..KeepPolicy::default()
    }
}

fn kept_times(d: &[GroupDecision]) -> Vec<String> {
    d.iter()
        .flat_map(|g| g.keep.iter().map(|k| k.time.to_string()))
        .collect()
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

#[test]
fn keep_last() {
    let snaps: Vec<_> = (1..=5)
        .map(|d| snap(&format!("2026-01-0{d}T12:00:00Z"), "h", &[]))
        .collect();
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Last, 3)]),
        &utc(),
    );
    assert_eq!(
        kept_times(&d),
        [
            "2026-01-05T12:00:00Z",
            "2026-01-04T12:00:00Z",
            "2026-01-03T12:00:00Z"
        ]
    );
    assert_eq!(d[0].remove.len(), 2);
    assert_eq!(d[0].keep[0].reasons, ["last snapshot"]);
}

#[test]
fn daily_buckets_follow_local_time_across_spring_dst() {
    // Europe/Berlin moves from CET (+01) to CEST (+02) at 2026-03-29 02:00 local.
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let snaps = vec![
        snap("2026-03-28T22:30:00Z", "h", &[]), // 23:30 CET, Mar 28
        snap("2026-03-28T23:30:00Z", "h", &[]), // 00:30 CET, Mar 29
        snap("2026-03-29T01:30:00Z", "h", &[]), // 03:30 CEST, Mar 29
        snap("2026-03-29T22:10:00Z", "h", &[]), // 00:10 CEST, Mar 30
    ];
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Daily, 3)]),
        &tz,
    );
    assert_eq!(
        kept_times(&d),
        [
            "2026-03-29T22:10:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-28T22:30:00Z"
        ]
    );
    // In UTC the days split differently.
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Daily, 3)]),
        &utc(),
    );
    assert_eq!(
        kept_times(&d),
        ["2026-03-29T22:10:00Z", "2026-03-28T23:30:00Z"]
    );
}

#[test]
fn hourly_buckets_merge_the_repeated_hour_in_autumn() {
    // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice.
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let snaps = vec![
        snap("2026-10-25T00:30:00Z", "h", &[]), // 02:30 CEST
        snap("2026-10-25T01:30:00Z", "h", &[]), // 02:30 CET
        snap("2026-10-25T02:30:00Z", "h", &[]), // 03:30 CET
    ];
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Hourly, 10)]),
        &tz,
    );
    assert_eq!(
        kept_times(&d),
        ["2026-10-25T02:30:00Z", "2026-10-25T01:30:00Z"]
    );
}

#[test]
fn monthly_and_yearly_across_the_new_year() {
    let snaps = vec![
        snap("2025-12-30T10:00:00Z", "h", &[]),
        snap("2025-12-31T10:00:00Z", "h", &[]),
        snap("2026-01-01T10:00:00Z", "h", &[]),
        snap("2026-01-02T10:00:00Z", "h", &[]),
        snap("2026-02-01T10:00:00Z", "h", &[]),
    ];
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Monthly, 2)]),
        &utc(),
    );
    assert_eq!(
        kept_times(&d),
        ["2026-02-01T10:00:00Z", "2026-01-02T10:00:00Z"]
    );
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Yearly, 2)]),
        &utc(),
    );
    assert_eq!(
        kept_times(&d),
        ["2026-02-01T10:00:00Z", "2025-12-31T10:00:00Z"]
    );
}

#[test]
fn weekly_uses_iso_weeks_across_the_year() {
    // 2025-12-29 (Monday) starts ISO week 2026-W01; 2025-12-28 (Sunday) is in 2025-W52.
    let snaps = vec![
        snap("2025-12-27T10:00:00Z", "h", &[]),
        snap("2025-12-28T10:00:00Z", "h", &[]),
        snap("2025-12-29T10:00:00Z", "h", &[]),
        snap("2026-01-03T10:00:00Z", "h", &[]),
    ];
    let d = apply_policy(
        &snaps,
        GroupBy::default(),
        &policy(&[(Period::Weekly, 5)]),
        &utc(),
    );
    assert_eq!(
        kept_times(&d),
        ["2026-01-03T10:00:00Z", "2025-12-28T10:00:00Z"]
    );
}

#[test]
fn homelab_policy_over_two_years_of_dailies() {
    // One snapshot a day at 03:00 UTC from 2024-11-22 to 2026-11-21 (a Saturday).
    let mut snaps = Vec::new();
    let mut day: jiff::civil::Date = "2024-11-22".parse().unwrap();
    let last: jiff::civil::Date = "2026-11-21".parse().unwrap();
    while day <= last {
        snaps.push(snap(&format!("{day}T03:00:00Z"), "h", &[]));
        day = day.tomorrow().unwrap();
    }
    assert_eq!(snaps.len(), 730);
    let p = policy(&[
        (Period::Daily, 7),
        (Period::Weekly, 6),
        (Period::Monthly, 6),
        (Period::Yearly, 1),
    ]);
    let d = apply_policy(&snaps, GroupBy::default(), &p, &utc());
    let kept: Vec<String> = d[0]
        .keep
        .iter()
        .map(|k| k.time.to_string()[..10].to_owned())
        .collect();
    // Daily: Nov 15–21. Weekly (ISO weeks end on Sunday): Nov 21, 15, 8, 1, Oct 25, 18.
    // Monthly: Nov 21, Oct 31, Sep 30, Aug 31, Jul 31, Jun 30. Yearly: Nov 21.
    let expected = [
        "2026-11-21",
        "2026-11-20",
        "2026-11-19",
        "2026-11-18",
        "2026-11-17",
        "2026-11-16",
        "2026-11-15",
        "2026-11-08",
        "2026-11-01",
        "2026-10-31",
        "2026-10-25",
        "2026-10-18",
        "2026-09-30",
        "2026-08-31",
        "2026-07-31",
        "2026-06-30",
    ];
    assert_eq!(kept, expected);
    assert_eq!(d[0].remove.len(), 730 - 16);
    let newest = &d[0].keep[0].reasons;
    assert_eq!(
        newest,
        &[
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot"
        ]
    );
    let oct31 = d[0]
        .keep
        .iter()
        .find(|k| k.time.to_string().starts_with("2026-10-31"))
        .unwrap();
    assert_eq!(oct31.reasons, ["monthly snapshot"]);
}

#[test]
fn tags_within_and_groups() {
    let snaps = vec![
        snap("2026-01-01T00:00:00Z", "a", &["pinned"]),
        snap("2026-01-05T00:00:00Z", "a", &[]),
        snap("2026-01-09T00:00:00Z", "a", &[]),
        snap("2026-01-10T00:00:00Z", "a", &[]),
        snap("2026-01-02T00:00:00Z", "b", &[]),
    ];
    let p = KeepPolicy {
        within: Some(CalendarDuration::parse("2d").unwrap()),
        tags: vec!["pinned".into()],
        ..KeepPolicy::default()
    };
    let d = apply_policy(&snaps, GroupBy::default(), &p, &utc());
    assert_eq!(d.len(), 2, "hosts are separate groups");
    let a = d
        .iter()
        .find(|g| g.key.hostname.as_deref() == Some("a"))
        .unwrap();
    let kept: Vec<_> = a
        .keep
        .iter()
        .map(|k| (k.time.to_string(), k.reasons.clone()))
        .collect();
    assert_eq!(
        kept,
        [
            (
                "2026-01-10T00:00:00Z".to_owned(),
                vec!["within 2d".to_owned()]
            ),
            (
                "2026-01-09T00:00:00Z".to_owned(),
                vec!["within 2d".to_owned()]
            ),
            (
                "2026-01-01T00:00:00Z".to_owned(),
                vec!["has tag pinned".to_owned()]
            ),
        ]
    );
    // Each group's "within" counts from its own newest snapshot.
    let b = d
        .iter()
        .find(|g| g.key.hostname.as_deref() == Some("b"))
        .unwrap();
    assert_eq!(b.keep.len(), 1);
    // within-daily: the newest of each day within 10 days.
    let p = KeepPolicy {
        within_buckets: [(Period::Daily, CalendarDuration::parse("10d").unwrap())].into(),
        ..KeepPolicy::default()
    };
    let mut snaps2 = snaps.clone();
    snaps2.push(snap("2026-01-10T12:00:00Z", "a", &[]));
    let d = apply_policy(&snaps2, GroupBy::parse("").unwrap(), &p, &utc());
    assert_eq!(
        kept_times(&d),
        [
            "2026-01-10T12:00:00Z",
            "2026-01-09T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-01T00:00:00Z"
        ]
    );
}

#[test]
fn durations_and_empty_policies() {
    assert_eq!(
        CalendarDuration::parse("1y2m3d4h").unwrap(),
        CalendarDuration {
            years: 1,
            months: 2,
            days: 3,
            hours: 4
        }
    );
    assert!(CalendarDuration::parse("3w").is_err());
    assert!(CalendarDuration::parse("12").is_err());
    assert!(KeepPolicy::default().is_empty());
    assert!(policy(&[(Period::Daily, 0)]).is_empty());
    assert!(!policy(&[(Period::Daily, 1)]).is_empty());
    assert!(GroupBy::parse("host,color").is_err());
}
