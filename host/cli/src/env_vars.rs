//! Every environment variable cairn reads, in one place.

/// Environment variable names.
pub struct EnvVars;

impl EnvVars {
    /// Repository location.
    pub const CAIRN_REPOSITORY: &'static str = "CAIRN_REPOSITORY";
    /// File holding the repository location.
    pub const CAIRN_REPOSITORY_FILE: &'static str = "CAIRN_REPOSITORY_FILE";
    /// File holding the password.
    pub const CAIRN_PASSWORD_FILE: &'static str = "CAIRN_PASSWORD_FILE";
    /// Command printing the password.
    pub const CAIRN_PASSWORD_COMMAND: &'static str = "CAIRN_PASSWORD_COMMAND";
    /// The password itself (prefer a file or command: the environment can leak).
    pub const CAIRN_PASSWORD: &'static str = "CAIRN_PASSWORD";
    /// The repository `copy` reads from.
    pub const CAIRN_FROM_REPOSITORY: &'static str = "CAIRN_FROM_REPOSITORY";
    /// File holding that repository's password.
    pub const CAIRN_FROM_PASSWORD_FILE: &'static str = "CAIRN_FROM_PASSWORD_FILE";
    /// Command printing that repository's password.
    pub const CAIRN_FROM_PASSWORD_COMMAND: &'static str = "CAIRN_FROM_PASSWORD_COMMAND";
    /// That repository's password itself.
    pub const CAIRN_FROM_PASSWORD: &'static str = "CAIRN_FROM_PASSWORD";
    /// Extra CA certificates (PEM) for https stores.
    pub const CAIRN_CA_CERT: &'static str = "CAIRN_CA_CERT";
    /// User name for a `rest:` server, when the URL has no user info.
    pub const CAIRN_REST_USERNAME: &'static str = "CAIRN_REST_USERNAME";
    /// Password for a `rest:` server, when the URL has no user info.
    pub const CAIRN_REST_PASSWORD: &'static str = "CAIRN_REST_PASSWORD";
    /// Cache directory.
    pub const CAIRN_CACHE_DIR: &'static str = "CAIRN_CACHE_DIR";
    /// The user's cache base directory (XDG).
    pub const XDG_CACHE_HOME: &'static str = "XDG_CACHE_HOME";
    /// The user's home.
    pub const HOME: &'static str = "HOME";
    /// The operator's configuration file (plugin instances, their settings and grants).
    pub const CAIRN_CONFIG: &'static str = "CAIRN_CONFIG";
    /// The plugin store directory.
    pub const CAIRN_PLUGIN_DIR: &'static str = "CAIRN_PLUGIN_DIR";
    /// Where the node's file system is seen when cairn runs in a container (`/host`).
    pub const CAIRN_HOST_ROOT: &'static str = "CAIRN_HOST_ROOT";
    /// The user's configuration base directory (XDG).
    pub const XDG_CONFIG_HOME: &'static str = "XDG_CONFIG_HOME";
    /// The user's data base directory (XDG).
    pub const XDG_DATA_HOME: &'static str = "XDG_DATA_HOME";
    /// Log filter, as for `tracing_subscriber::EnvFilter`.
    pub const RUST_LOG: &'static str = "RUST_LOG";
}
