//! Flags as `--name value` or `--name=value`, with environment variables as
//! the fallback (`--port` reads `PORT`). Small on purpose: the examples
//! need a handful of flags, not a parser crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A flag that is missing or cannot be read.
#[derive(Debug)]
pub(crate) struct ArgError(String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

#[derive(Debug, Default)]
pub(crate) struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// The process's arguments. `switches` are the flags that take no
    /// value (`--no-faults`).
    pub(crate) fn parse(switches: &[&str]) -> Result<Self, ArgError> {
        Self::from_iter(std::env::args().skip(1), switches)
    }

    pub(crate) fn from_iter(
        args: impl IntoIterator<Item = String>,
        switches: &[&str],
    ) -> Result<Self, ArgError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(ArgError(format!("unexpected argument {arg:?}")));
            };
            if let Some((name, value)) = flag.split_once('=') {
                parsed.values.insert(name.to_owned(), value.to_owned());
            } else if switches.contains(&flag) {
                parsed.switches.push(flag.to_owned());
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| ArgError(format!("--{flag} needs a value")))?;
                parsed.values.insert(flag.to_owned(), value);
            }
        }
        Ok(parsed)
    }

    /// `--name`, or the environment variable `NAME` (dashes as
    /// underscores), or `default`.
    pub(crate) fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, ArgError>
    where
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            Some(value) => value
                .parse()
                .map_err(|e| ArgError(format!("--{name} {value:?}: {e}"))),
            None => Ok(default),
        }
    }

    /// `--name` as a comma-separated list.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn raw(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name.to_uppercase().replace('-', "_")).ok())
    }
}
