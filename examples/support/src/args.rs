//! The flags the example binaries share, parsed by clap (`--help` lists
//! them; an unknown flag is an error). Each flag can also come from the
//! environment variable in its help.

use std::time::Duration;

use super::server::Limits;

/// Where the services keep their data.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// The database: `sqlite://FILE?mode=rwc` (every instance on this
    /// machine sharing the file) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://bulwark-services.db?mode=rwc"
    )]
    pub database_url: String,
}

/// How long a listener waits for clients, and how many it serves.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Seconds a client has to send a request's head; an idle keep-alive
    /// connection is closed after this long.
    #[arg(long, env = "HEADER_TIMEOUT", default_value_t = 10.0, value_parser = seconds)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request's body.
    #[arg(long, env = "BODY_TIMEOUT", default_value_t = 10.0, value_parser = seconds)]
    pub body_timeout: f64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs_f64(self.header_timeout),
            body_timeout: Duration::from_secs_f64(self.body_timeout),
            max_connections: self.max_connections as usize,
            ..Limits::default()
        }
    }
}

/// A number of seconds from 0.01 to a day.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.01..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{text:?}: seconds, from 0.01 to 86400")),
    }
}

/// URLs of instances.
#[derive(Debug, Clone)]
pub struct Urls(pub Vec<String>);

/// A comma-separated list of URLs.
pub fn urls(text: &str) -> Result<Urls, String> {
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for url in &urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?}: an http:// URL"));
        }
    }
    if urls.is_empty() {
        return Err("at least one URL".into());
    }
    Ok(Urls(urls))
}
