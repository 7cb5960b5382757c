//! Human-readable durations (`15s`, `5m`, `1h30m`) as they appear in policies and labels.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written as a human string: `0s`, `15s`, `5m`, `1h30m`, `250ms`.
///
/// Serialized back in the compact canonical form (`90s` becomes `1m30s`), so a policy survives
/// an encode/decode round trip unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub std::time::Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("must not be negative, got {0:?}")]
    Negative(String),
    #[error("is not a duration like 15s, 5m or 1h30m, got {0:?}")]
    Malformed(String),
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.starts_with('-') {
            return Err(DurationError::Negative(text.to_owned()));
        }
        // A bare number has no unit and is ambiguous (seconds? milliseconds?): refuse it,
        // except 0 which means the same in every unit.
        if trimmed == "0" {
            return Ok(Self::default());
        }
        if trimmed.is_empty() || trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(DurationError::Malformed(text.to_owned()));
        }
        humantime::parse_duration(trimmed)
            .map(Self)
            .map_err(|_| DurationError::Malformed(text.to_owned()))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let (mut secs, ms) = (total_ms / 1000, total_ms % 1000);
        let hours = secs / 3600;
        secs %= 3600;
        let minutes = secs / 60;
        secs %= 60;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if secs > 0 {
            write!(f, "{secs}s")?;
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A non-negative duration: a sequence of numbers with units h, m, s, ms (e.g. 15s, 5m, 1h30m).",
            "pattern": "^(0|([0-9]+(h|m|s|ms))+)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonical_forms() {
        for (text, canonical) in [
            ("15s", "15s"),
            ("90s", "1m30s"),
            ("1h30m", "1h30m"),
            ("5m", "5m"),
            ("0s", "0s"),
            ("0", "0s"),
            ("250ms", "250ms"),
        ] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<HumanDuration>().unwrap(), parsed);
        }
    }

    #[test]
    fn refuses_negative_bare_and_garbage() {
        assert_eq!(
            "-5s".parse::<HumanDuration>(),
            Err(DurationError::Negative("-5s".into()))
        );
        for bad in ["15", "", "fast", "5x", "1.5"] {
            assert!(
                matches!(
                    bad.parse::<HumanDuration>(),
                    Err(DurationError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
