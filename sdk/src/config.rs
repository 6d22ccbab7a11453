//! A plugin's configuration, as the host hands it over.

use crate::{Error, Result};

/// Key/value settings from the operator's configuration file and `-o key=value` (a later pair
/// overrides an earlier one).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or an `invalid-config` error that says how to set it.
    ///
    /// # Errors
    /// When `key` is not set.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "missing configuration key `{key}`: set it in the plugin's section of the \
                 configuration file or with -o {key}=VALUE"
            ))
        })
    }

    /// The value of `key` parsed as `T`, `default` when unset.
    ///
    /// # Errors
    /// `invalid-config` naming the key when the value does not parse.
    pub fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Error::InvalidConfig(format!("configuration key `{key}` has a bad value `{v}`"))
            }),
        }
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl From<Vec<(String, String)>> for Config {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Config { pairs }
    }
}
