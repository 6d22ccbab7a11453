//! The AWS shared files, `~/.aws/credentials` and `~/.aws/config`, for what the environment
//! does not set: the keys (and session token) of the profile named by `AWS_PROFILE` (else
//! `default`) and its region. The files are where `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE` say, as for the AWS CLI; the environment's keys win over the files'.
//! Values are never printed: errors name the file, the profile and the setting.

use std::path::{Path, PathBuf};

use cairn_repo::{Error, Result};
use ini::Ini;

/// What a profile gives.
#[derive(Default)]
pub(crate) struct Profile {
    /// Access key id, secret and session token.
    pub(crate) keys: Option<(String, String, Option<String>)>,
    pub(crate) region: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .field("region", &self.region)
            .finish()
    }
}

/// The profile for this process's environment.
///
/// # Errors
/// A file that exists but cannot be read or parsed; a profile named by `AWS_PROFILE` that is
/// in neither file; a key id without its secret.
pub(crate) fn load() -> Result<Profile> {
    load_with(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn load_with(env: &dyn Fn(&str) -> Option<String>) -> Result<Profile> {
    let explicit = env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE"));
    let name = explicit.clone().unwrap_or_else(|| "default".to_owned());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = file("AWS_CONFIG_FILE", "config");
    let credentials = credentials.as_deref().map(read).transpose()?.flatten();
    let config = config.as_deref().map(read).transpose()?.flatten();
    // In the config file a profile is `[profile NAME]`, except `[default]`.
    let config_section = format!("profile {name}");
    let sections = [
        credentials
            .as_ref()
            .and_then(|(p, ini)| Some((p, ini.section(Some(name.as_str()))?))),
        config.as_ref().and_then(|(p, ini)| {
            let s = ini.section(Some(config_section.as_str())).or_else(|| {
                (name == "default")
                    .then(|| ini.section(Some("default")))
                    .flatten()
            })?;
            Some((p, s))
        }),
    ];
    if sections.iter().all(Option::is_none) {
        return match explicit {
            Some(_) => Err(Error::invalid(format!(
                "the AWS profile `{name}` (AWS_PROFILE) is in neither the credentials file nor \
                 the config file ({} and {}); add it or unset AWS_PROFILE",
                shown(credentials.as_ref()),
                shown(config.as_ref())
            ))),
            None => Ok(Profile::default()),
        };
    }
    let mut profile = Profile::default();
    for (path, section) in sections.into_iter().flatten() {
        let get = |k: &str| section.get(k).map(str::to_owned).filter(|v| !v.is_empty());
        if profile.keys.is_none() {
            match (get("aws_access_key_id"), get("aws_secret_access_key")) {
                (Some(id), Some(secret)) => {
                    profile.keys = Some((id, secret, get("aws_session_token")));
                }
                (None, None) => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "the AWS profile `{name}` in {} has only one of aws_access_key_id and \
                         aws_secret_access_key; give both",
                        path.display()
                    )));
                }
            }
        }
        if profile.region.is_none() {
            profile.region = get("region");
        }
    }
    Ok(profile)
}

fn shown(file: Option<&(PathBuf, Ini)>) -> String {
    file.map_or_else(|| "missing".to_owned(), |(p, _)| p.display().to_string())
}

/// The file at `path`, or `None` if there is none.
fn read(path: &Path) -> Result<Option<(PathBuf, Ini)>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ini::load_from_str(&text)
            .map(|ini| Some((path.to_owned(), ini)))
            .map_err(|e| {
                Error::invalid(format!(
                    "cannot parse the AWS file {} (line {}): fix or move it",
                    path.display(),
                    e.line
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(
            format!("cannot read the AWS file {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(home: &Path, vars: &[(&str, &str)]) -> Result<Profile> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("HOME".to_owned(), home.display().to_string())])
            .collect();
        load_with(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn home(credentials: &str, config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(d.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(d.path().join(".aws/config"), config).unwrap();
        d
    }

    const CREDENTIALS: &str = "# keys\n[default]\naws_access_key_id = AKIDEFAULT\n\
        aws_secret_access_key = s3cr3t-default\n\n[backup]\naws_access_key_id=AKIBACKUP\n\
        aws_secret_access_key=s3cr3t-backup\naws_session_token=tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile backup]\nregion = eu-north-1\n\
        [profile cfgonly]\naws_access_key_id = AKICFG\naws_secret_access_key = s3cr3t-cfg\n";

    #[test]
    fn default_and_named_profiles() {
        let h = home(CREDENTIALS, CONFIG);
        let p = with(h.path(), &[]).unwrap();
        assert_eq!(
            p.keys,
            Some(("AKIDEFAULT".into(), "s3cr3t-default".into(), None))
        );
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        let p = with(h.path(), &[("AWS_PROFILE", "backup")]).unwrap();
        assert_eq!(
            p.keys,
            Some((
                "AKIBACKUP".into(),
                "s3cr3t-backup".into(),
                Some("tok".into())
            ))
        );
        assert_eq!(p.region.as_deref(), Some("eu-north-1"));
        let p = with(h.path(), &[("AWS_PROFILE", "cfgonly")]).unwrap();
        assert_eq!(p.keys.unwrap().0, "AKICFG");
        assert!(!format!("{:?}", with(h.path(), &[]).unwrap()).contains("s3cr3t"));
    }

    #[test]
    fn files_elsewhere_and_missing() {
        let h = home(CREDENTIALS, CONFIG);
        let empty = tempfile::tempdir().unwrap();
        // No files: nothing, unless a profile was asked for.
        let p = with(empty.path(), &[]).unwrap();
        assert!(p.keys.is_none() && p.region.is_none());
        let e = with(empty.path(), &[("AWS_PROFILE", "backup")]).unwrap_err();
        assert!(e.to_string().contains("`backup`"), "{e}");
        // The variables point elsewhere.
        let creds = h.path().join(".aws/credentials");
        let p = with(
            empty.path(),
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
                ("AWS_PROFILE", "backup"),
            ],
        )
        .unwrap();
        assert_eq!(p.keys.unwrap().0, "AKIBACKUP");
    }

    #[test]
    fn half_a_key_or_a_broken_file_is_an_error_without_secrets() {
        let h = home("[default]\naws_secret_access_key = s3cr3t-only\n", "");
        let e = with(h.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("only one of"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        let h = home("[default\naws_access_key_id = x\n", "");
        let e = with(h.path(), &[]).unwrap_err().to_string();
        assert!(
            e.contains("cannot parse") && e.contains("credentials"),
            "{e}"
        );
    }
}
