//! The plan: which discovered volumes each app backs up. A volume belongs to the one app
//! whose selectors match it (or, for an app without selectors, whose name discovery gave
//! it); volumes no app covers are backed up on their own.

use std::collections::BTreeMap;

use cairn_plugin_host::discovery::check_identity;
use cairn_plugin_host::{Target, VolumeKind};
use cairn_repo::{Error, Result};
use globset::{GlobBuilder, GlobMatcher};

use crate::config::ConfigFile;

/// The configured apps, each with its volume selectors compiled.
pub struct Apps {
    apps: Vec<(String, Vec<GlobMatcher>)>,
}

impl Apps {
    /// The apps of `file`.
    ///
    /// # Errors
    /// When a selector is not a valid glob (the message names the app).
    pub fn new(file: &ConfigFile) -> Result<Apps> {
        let mut apps = Vec::new();
        for (name, app) in &file.apps {
            let globs = app
                .volumes
                .iter()
                .map(|g| {
                    GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .map(|g| g.compile_matcher())
                        .map_err(|e| {
                            Error::invalid(format!(
                                "app `{name}`: volume selector `{g}` is invalid: {e}"
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            apps.push((name.clone(), globs));
        }
        Ok(Apps { apps })
    }

    /// The apps that cover `target`: its selectors match the identity, or, without
    /// selectors, its name is the target's app.
    pub fn covering(&self, target: &Target) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|(name, globs)| {
                if globs.is_empty() {
                    *name == target.app
                } else {
                    globs.iter().any(|g| g.is_match(&target.identity))
                }
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// These discovered volumes, by identity.
    pub volumes: Vec<String>,
    /// Every discovered volume.
    pub all_discovered: bool,
    /// These apps (with their volumes).
    pub apps: Vec<String>,
    /// Every configured app.
    pub all_apps: bool,
}

impl Selection {
    /// Whether the backup goes by apps (their hooks run even with no volume found).
    pub fn by_app(&self) -> bool {
        self.all_apps || !self.apps.is_empty()
    }
}

/// Which volumes each app backs up: the apps in name order, then (under `None`) the
/// volumes no app covers. A selected app with no volumes is still there (its hooks run).
pub type Plan = BTreeMap<Option<String>, Vec<Target>>;

/// The plan for `selection` over the discovered volumes `found`.
///
/// # Errors
/// When a named app is not configured, a named volume was not discovered, or a volume is
/// covered by two apps.
pub fn plan(file: &ConfigFile, found: Vec<Target>, selection: &Selection) -> Result<Plan> {
    let apps = Apps::new(file)?;
    for name in &selection.apps {
        file.app(name)?;
    }
    let mut chosen: Vec<Target> = Vec::new();
    if selection.all_discovered || selection.by_app() {
        chosen = found;
    } else {
        for identity in &selection.volumes {
            match found.iter().find(|t| t.identity == *identity) {
                Some(t) => chosen.push(t.clone()),
                None => {
                    return Err(Error::invalid(format!(
                        "no volume `{identity}` was discovered on this node; `cairn discover` \
                         lists what is"
                    )));
                }
            }
        }
    }
    let wanted: Vec<&str> = if selection.all_apps {
        file.apps.keys().map(String::as_str).collect()
    } else {
        selection.apps.iter().map(String::as_str).collect()
    };
    let mut groups = Plan::new();
    for name in &wanted {
        let app = file.app(name)?;
        let own = path_targets(name, app)?
            .into_iter()
            .chain(bucket_targets(name, app)?);
        groups
            .entry(Some((*name).to_owned()))
            .or_default()
            .extend(own);
    }
    for target in chosen {
        let covering = apps.covering(&target);
        if covering.len() > 1 {
            return Err(Error::invalid(format!(
                "volume `{}` is covered by apps {}: a volume belongs to one app; narrow their \
                 `volumes` selectors",
                target.identity,
                covering.join(" and ")
            )));
        }
        let app = covering.first().copied();
        let in_scope = match app {
            Some(a) => wanted.is_empty() || wanted.contains(&a),
            None => wanted.is_empty(),
        };
        if in_scope {
            groups
                .entry(app.map(str::to_owned))
                .or_default()
                .push(target);
        }
    }
    Ok(groups)
}

/// The `paths` of app `name` as volumes: identity `paths/<app>/<path>`.
///
/// # Errors
/// When a path is not absolute or makes no clean identity (spaces, `..`).
pub fn path_targets(name: &str, app: &crate::config::App) -> Result<Vec<Target>> {
    app.paths
        .iter()
        .map(|path| {
            let bad =
                |why: &str| Error::invalid(format!("app `{name}`: path {} {why}", path.display()));
            let text = path.to_str().ok_or_else(|| bad("is not UTF-8"))?;
            let rel = text
                .strip_prefix('/')
                .ok_or_else(|| bad("is not absolute"))?
                .trim_end_matches('/');
            let identity = if rel.is_empty() {
                format!("paths/{name}")
            } else {
                format!("paths/{name}/{rel}")
            };
            check_identity(&identity).map_err(|e| bad(&e.to_string()))?;
            Ok(Target {
                identity,
                app: name.to_owned(),
                kind: VolumeKind::HostPath,
                path: path.clone(),
                plugin: "paths".into(),
                labels: BTreeMap::new(),
            })
        })
        .collect()
}

/// The `buckets` of app `name` as volumes: identity `buckets/<app>/<store>/<bucket>/<prefix>`
/// (`s3` with the endpoint's host for `s3:http(s)://HOST/…`, `s3`, `az` or `gs` for the
/// others), its path the location.
///
/// # Errors
/// When a location is not a bucket's, makes no clean identity, or is named twice.
pub fn bucket_targets(name: &str, app: &crate::config::App) -> Result<Vec<Target>> {
    let mut targets: Vec<Target> = Vec::new();
    for location in &app.buckets {
        let bad = |why: &str| Error::invalid(format!("app `{name}`: bucket `{location}` {why}"));
        let rest = [
            ("s3:http://", "s3/"),
            ("s3:https://", "s3/"),
            ("s3://", "s3/"),
            ("az://", "az/"),
            ("gs://", "gs/"),
        ]
        .iter()
        .find_map(|(scheme, store)| {
            location
                .strip_prefix(scheme)
                .map(|r| format!("{store}{}", r.trim_end_matches('/')))
        })
        .ok_or_else(|| {
            bad(
                "is not a bucket: use s3:http(s)://HOST:PORT/BUCKET/PREFIX, s3://BUCKET/PREFIX, \
                 az://CONTAINER/PREFIX or gs://BUCKET/PREFIX",
            )
        })?;
        let identity = format!("buckets/{name}/{rest}");
        check_identity(&identity).map_err(|e| bad(&e.to_string()))?;
        if targets.iter().any(|t| t.identity == identity) {
            return Err(bad("is named twice"));
        }
        targets.push(Target {
            identity,
            app: name.to_owned(),
            kind: VolumeKind::Bucket,
            path: location.into(),
            plugin: "buckets".into(),
            labels: BTreeMap::new(),
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse(text).unwrap()
    }

    fn found(identity: &str, app: &str) -> Target {
        Target {
            identity: identity.into(),
            app: app.into(),
            kind: VolumeKind::Csi,
            path: format!("/var/lib/kubelet/{identity}").into(),
            plugin: "kubelet".into(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn each_volume_goes_to_the_app_that_covers_it_and_paths_to_their_app() {
        let f = file(
            r#"
            [apps.shop]
            paths = ["/srv/shop/", "/etc/shop"]
            [apps.db]
            volumes = ["k8s/data/**"]
            "#,
        );
        let all = vec![
            found("k8s/shop/web", "shop"),
            found("k8s/data/pg/0", "data"),
            found("k8s/other/x", "other"),
        ];
        let sel = Selection {
            all_apps: true,
            ..Selection::default()
        };
        let p = plan(&f, all.clone(), &sel).unwrap();
        let ids = |k: Option<&str>| -> Vec<String> {
            p[&k.map(str::to_owned)]
                .iter()
                .map(|t| t.identity.clone())
                .collect()
        };
        assert_eq!(
            ids(Some("shop")),
            ["paths/shop/srv/shop", "paths/shop/etc/shop", "k8s/shop/web"]
        );
        assert_eq!(ids(Some("db")), ["k8s/data/pg/0"]);
        assert!(
            !p.contains_key(&None),
            "volumes no app covers are not in an app run"
        );
        let p = plan(&f, all, &Selection::default()).unwrap();
        assert_eq!(p.len(), 0, "nothing selected, nothing planned");
    }

    #[test]
    fn buckets_are_volumes_of_their_app_named_by_store_and_bucket() {
        let f = file(
            r#"
            [apps.shop]
            buckets = ["s3:http://127.0.0.1:9000/media/shop/", "az://files", "gs://b/p"]
            "#,
        );
        let sel = Selection {
            apps: vec!["shop".into()],
            ..Selection::default()
        };
        let p = plan(&f, vec![], &sel).unwrap();
        let got: Vec<(&str, VolumeKind, String)> = p[&Some("shop".to_owned())]
            .iter()
            .map(|t| (t.identity.as_str(), t.kind, t.path.display().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "buckets/shop/s3/127.0.0.1:9000/media/shop",
                    VolumeKind::Bucket,
                    "s3:http://127.0.0.1:9000/media/shop/".to_owned()
                ),
                (
                    "buckets/shop/az/files",
                    VolumeKind::Bucket,
                    "az://files".to_owned()
                ),
                (
                    "buckets/shop/gs/b/p",
                    VolumeKind::Bucket,
                    "gs://b/p".to_owned()
                ),
            ]
        );
        for (bucket, why) in [
            ("/srv/data", "is not a bucket"),
            ("s3://b/a/../c", "`..`"),
            ("s3://b/x y", "spaces"),
        ] {
            let f = file(&format!("[apps.shop]\nbuckets = [{bucket:?}]\n"));
            let e = plan(&f, vec![], &sel).unwrap_err().to_string();
            assert!(e.contains("app `shop`") && e.contains(why), "{bucket}: {e}");
        }
        let f = file("[apps.shop]\nbuckets = [\"s3://b/p\", \"s3://b/p/\"]\n");
        let e = plan(&f, vec![], &sel).unwrap_err().to_string();
        assert!(e.contains("named twice"), "{e}");
    }

    #[test]
    fn bad_paths_and_overlapping_apps_are_refused_by_name() {
        let f = file("[apps.shop]\npaths = [\"srv/shop\"]\n");
        let sel = Selection {
            apps: vec!["shop".into()],
            ..Selection::default()
        };
        let e = plan(&f, vec![], &sel).unwrap_err().to_string();
        assert!(
            e.contains("app `shop`") && e.contains("not absolute"),
            "{e}"
        );
        let f = file("[apps.a]\nvolumes = [\"k8s/**\"]\n[apps.b]\nvolumes = [\"k8s/x/*\"]\n");
        let e = plan(
            &f,
            vec![found("k8s/x/y", "x")],
            &Selection {
                all_discovered: true,
                ..Selection::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("covered by apps a and b"), "{e}");
        let e = plan(
            &f,
            vec![],
            &Selection {
                apps: vec!["nope".into()],
                ..Selection::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no app `nope`"), "{e}");
    }
}
