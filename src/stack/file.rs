//! Reading a [`ResilienceConfig`] from a TOML or YAML file.

use std::fmt;
use std::path::Path;

use super::ResilienceConfig;
use crate::config::ConfigError;

/// A configuration file could not be used: which field, on which line, and
/// what is wrong with it.
///
/// ```text
/// invalid resilience config (TOML) at line 7: circuit_breaker.failure_rate_threshold must be in (0, 1], got 1.5
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    format: &'static str,
    field: String,
    line: Option<usize>,
    message: String,
}

impl ConfigFileError {
    /// The field, as a dotted path from the top of the file
    /// (`circuit_breaker.open_duration.base`); empty when the problem is
    /// not one field's (a syntax error, an unreadable file).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The line of the file the problem is on, counted from 1, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid resilience config ({})", self.format)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{} ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigFileError {}

impl ResilienceConfig {
    /// Reads a configuration from TOML text, and checks it as
    /// [`ResilienceBuilder::build`](super::ResilienceBuilder::build) would.
    ///
    /// Durations are written `"250ms"`, `"2s"`, `"1m"`; a layer that is on
    /// by default is turned off with `false` (`timeout = false`), one that
    /// is off is turned on with `true` or a table of its settings. Every
    /// field has the default of its config struct.
    ///
    /// ```
    /// use tower_bulwark::stack::ResilienceConfig;
    ///
    /// let config = ResilienceConfig::from_toml(r#"
    /// service = "users"
    /// timeout = "500ms"
    ///
    /// [circuit_breaker]
    /// failure_rate_threshold = 0.25
    /// sliding_window = { kind = "time", size = "30s", buckets = 10 }
    /// open_duration = { kind = "exponential", base = "5s", max = "1m" }
    ///
    /// [retry]
    /// max_attempts = 2
    /// budget = { ratio = 0.1, min_per_second = 5, max = 50 }
    ///
    /// [balance]
    /// strategy = "p2c_least_pending"
    /// outlier_detection = { consecutive_failures = 3, base_ejection_time = "10s" }
    /// "#)?;
    /// assert_eq!(config.service, "users");
    ///
    /// let err = ResilienceConfig::from_toml("[circuit_breaker]\nfailure_rate_threshold = 1.5\n")
    ///     .unwrap_err();
    /// assert_eq!((err.field(), err.line()), ("circuit_breaker.failure_rate_threshold", Some(2)));
    /// # Ok::<_, tower_bulwark::stack::ConfigFileError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigFileError`] naming the field and its line: a syntax
    /// error, an unknown field, a value of the wrong type, or a value the
    /// layer rejects.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigFileError> {
        const FORMAT: &str = "TOML";
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigFileError {
            format: FORMAT,
            field: String::new(),
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().to_owned(),
        })?;
        let config: ResilienceConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner();
                ConfigFileError {
                    format: FORMAT,
                    line: inner
                        .span()
                        .map(|span| line_of(text, span.start))
                        .or_else(|| locate(text, &field)),
                    field: field_or_empty(field),
                    message: inner.message().to_owned(),
                }
            })?;
        checked(config, FORMAT, text)
    }

    /// Reads a configuration from YAML text, with the same fields and
    /// values as [`from_toml`](Self::from_toml).
    ///
    /// ```
    /// use tower_bulwark::stack::ResilienceConfig;
    ///
    /// let config = ResilienceConfig::from_yaml("
    /// service: users
    /// timeout: 500ms
    /// circuit_breaker:
    ///   consecutive_failures: 5
    /// cache: true
    /// ")?;
    /// assert!(config.cache.is_some());
    ///
    /// let err = ResilienceConfig::from_yaml("service: users\ntimeout: 0s\n").unwrap_err();
    /// assert_eq!((err.field(), err.line()), ("timeout", Some(2)));
    /// # Ok::<_, tower_bulwark::stack::ConfigFileError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`from_toml`](Self::from_toml).
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Self, ConfigFileError> {
        const FORMAT: &str = "YAML";
        let deserializer = serde_norway::Deserializer::from_str(text);
        let config: ResilienceConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner();
                let message = inner.to_string();
                // The message ends with " at line L column C" when the
                // place is known; the line is reported on its own.
                let message = match message.rfind(" at line ") {
                    Some(at) => message[..at].to_owned(),
                    None => message,
                };
                // and may start with the field, which is reported on its own.
                let message = message
                    .strip_prefix(&format!("{field}: "))
                    .map(str::to_owned)
                    .unwrap_or(message);
                ConfigFileError {
                    format: FORMAT,
                    line: inner
                        .location()
                        .map(|l| l.line())
                        .or_else(|| locate(text, &field)),
                    field: field_or_empty(field),
                    message,
                }
            })?;
        checked(config, FORMAT, text)
    }

    /// Reads a configuration file: TOML for a `.toml` file, YAML for a
    /// `.yaml` or `.yml` file.
    ///
    /// # Errors
    ///
    /// As [`from_toml`](Self::from_toml); or the file cannot be read, its
    /// extension is none of those, or the feature of its format is off.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path = path.as_ref();
        let unreadable = |format, message: String| ConfigFileError {
            format,
            field: String::new(),
            line: None,
            message,
        };
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let read = |format| {
            std::fs::read_to_string(path)
                .map_err(|e| unreadable(format, format!("cannot read {}: {e}", path.display())))
        };
        // A format whose feature is off is named, with the feature.
        #[cfg(not(all(feature = "toml", feature = "yaml")))]
        let off = |format, feature: &str| {
            Err(unreadable(
                format,
                format!(
                    "{}: reading {format} needs tower-bulwark's `{feature}` feature",
                    path.display()
                ),
            ))
        };
        match extension {
            #[cfg(feature = "toml")]
            "toml" => Self::from_toml(&read("TOML")?),
            #[cfg(not(feature = "toml"))]
            "toml" => off("TOML", "toml"),
            #[cfg(feature = "yaml")]
            "yaml" | "yml" => Self::from_yaml(&read("YAML")?),
            #[cfg(not(feature = "yaml"))]
            "yaml" | "yml" => off("YAML", "yaml"),
            _ => Err(unreadable(
                "file",
                format!("{}: expected a .toml, .yaml or .yml file", path.display()),
            )),
        }
    }
}

/// `field`, or nothing for the top of the document (which
/// `serde_path_to_error` writes as `.`).
fn field_or_empty(field: String) -> String {
    if field == "." { String::new() } else { field }
}

/// Runs the layers' own checks, placing a rejected value on its line.
fn checked(
    config: ResilienceConfig,
    format: &'static str,
    text: &str,
) -> Result<ResilienceConfig, ConfigFileError> {
    match config.validate() {
        Ok(()) => Ok(config),
        Err(error) => Err(from_config_error(&error, format, text)),
    }
}

fn from_config_error(error: &ConfigError, format: &'static str, text: &str) -> ConfigFileError {
    let field = error.path();
    ConfigFileError {
        format,
        line: locate(text, &field),
        message: error.problem(),
        field,
    }
}

/// The line, counted from 1, of byte `offset` in `text`.
#[cfg(feature = "toml")]
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where the dotted `path` is written in a TOML or YAML text: each
/// key is looked for after the one before it, so `circuit_breaker.minimum_calls`
/// finds the `minimum_calls` of the `circuit_breaker` section. When a key is
/// not written (its value is a default), the line of the deepest key found.
///
/// Written by hand because neither `toml` nor the YAML parser keeps the
/// places of values once deserialized, and a layer's checks run after
/// deserializing (they compare fields with each other). One pass over the
/// lines, each looked at once, whatever the file holds: a 10 MB file is
/// searched in milliseconds.
fn locate(text: &str, path: &str) -> Option<usize> {
    let mut keys = path.split('.').filter(|k| !k.is_empty()).peekable();
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        // What is before a comment.
        let code = line.split('#').next().unwrap_or("");
        let mut from = 0;
        while let Some(key) = keys.peek() {
            match find_key(code, key, from) {
                Some(at) => {
                    found = Some(index + 1);
                    from = at + key.len();
                    keys.next();
                }
                None => break,
            }
        }
        if keys.peek().is_none() {
            break;
        }
    }
    found
}

/// The offset in `line` of the next use of `key` as a key at or after
/// `from`: `key =`, `key:`, `[key]`, `[key.`, `{ key =`.
fn find_key(line: &str, key: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(found) = line.get(start..)?.find(key) {
        let at = start + found;
        start = at + key.len();
        let before = line[..at].chars().next_back();
        let after = line[at + key.len()..].trim_start_matches([' ', '\t']);
        let starts_key =
            before.is_none_or(|c| matches!(c, ' ' | '\t' | '{' | ',' | '[' | '.' | '"' | '-'));
        let ends_key = after.starts_with(['=', ':', ']', '.'])
            || after.starts_with("\" ")
            || after.starts_with("\"=")
            || after.starts_with("\":");
        if starts_key && ends_key {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_follows_the_path_through_sections_and_inline_tables() {
        let toml = "service = \"a\"\n# minimum_calls in a comment\n[circuit_breaker]\nfailure_rate_threshold = 0.5\nsliding_window = { kind = \"count\", size = 0 }\nminimum_calls = 3\n";
        assert_eq!(locate(toml, "circuit_breaker.minimum_calls"), Some(6));
        assert_eq!(locate(toml, "circuit_breaker.sliding_window.size"), Some(5));
        // A default, not written: the section's line.
        assert_eq!(locate(toml, "circuit_breaker.half_open_probes"), Some(3));
        assert_eq!(locate(toml, "retry.max_attempts"), None);

        let yaml =
            "service: a\ncircuit_breaker:\n  open_duration:\n    kind: fixed\n    duration: 0s\n";
        assert_eq!(locate(yaml, "circuit_breaker.open_duration"), Some(3));
        assert_eq!(
            locate(yaml, "circuit_breaker.open_duration.duration"),
            Some(5)
        );
    }

    #[test]
    fn locate_ends_a_key_on_its_line_and_skips_comments() {
        // A key at the end of a line is not followed by its value.
        assert_eq!(locate("timeout\n= 1\ntimeout = 2\n", "timeout"), Some(3));
        assert_eq!(locate("# timeout = 1\ntimeout = 2\n", "timeout"), Some(2));
        // Windows line ends.
        assert_eq!(
            locate("service = \"a\"\r\ntimeout = \"1s\"\r\n", "timeout"),
            Some(2)
        );
    }

    #[test]
    fn locate_finds_a_key_after_a_long_line_naming_its_section() {
        // A section's name ten thousand times on one line before it: each
        // occurrence is looked at once, not the line back to its start.
        let noise = "# circuit_breaker ".repeat(10_000);
        let toml = format!("{noise}\n[circuit_breaker]\nminimum_calls = 0\n");
        assert_eq!(locate(&toml, "circuit_breaker.minimum_calls"), Some(3));
    }

    #[test]
    #[cfg(feature = "toml")]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
