//! Diagnostics: one problem in a policy, located by its path (`spec.metrics[0].target`).

use std::fmt;

use serde::Serialize;

/// At most this many diagnostics are kept for one input, so a hostile document cannot make the
/// report itself unbounded; the last one says how many were left out.
pub const MAX_DIAGNOSTICS: usize = 100;

/// One problem, e.g. `spec.behavior.scaleDown.policies[0].value: must be greater than 0, got 0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Where the problem is: a field path, a label (`label io.swarmpilot.max`), or empty for
    /// the input as a whole.
    pub path: String,
    /// What is wrong, naming the offending value.
    pub message: String,
}

impl Diagnostic {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from an enclosing context (`document[1]`, a file, a label).
    pub fn within(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one input; displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// A single problem.
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![Diagnostic::new(path, message)])
    }

    /// `Ok(())` when there is nothing to report; otherwise the (capped) list.
    pub fn result(list: Vec<Diagnostic>) -> Result<(), Self> {
        if list.is_empty() {
            Ok(())
        } else {
            Err(Self(cap(list)))
        }
    }

    /// Every diagnostic seen from an enclosing context.
    pub fn within(self, prefix: &str) -> Self {
        Self(self.0.into_iter().map(|d| d.within(prefix)).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Keeps the first [`MAX_DIAGNOSTICS`] and says how many more there were.
pub(crate) fn cap(mut list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if list.len() > MAX_DIAGNOSTICS {
        let left_out = list.len() - (MAX_DIAGNOSTICS - 1);
        list.truncate(MAX_DIAGNOSTICS - 1);
        list.push(Diagnostic::new(
            "",
            format!("... and {left_out} more problems not shown"),
        ));
    }
    list
}

/// `spec` + `minReplicas` = `spec.minReplicas`; `metrics` + `[0]` = `metrics[0]`.
pub(crate) fn join_path(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        prefix.to_owned()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

/// The path of a mapping key below `parent`; keys that are not plain identifiers are quoted.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        join_path(parent, key)
    } else {
        format!("{parent}[{key:?}]")
    }
}

/// The path of a list item below `parent`.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path serde reached before failing; empty when it failed on the input as a whole.
pub(crate) fn serde_path(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." || path == "?" {
        String::new()
    } else {
        path
    }
}

/// A user-supplied string as shown in a message: quoted, and shortened when long.
pub(crate) fn show_text(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() > LIMIT {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head:?}... ({} characters)", text.chars().count())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_the_document_reads() {
        assert_eq!(join_path("spec", "minReplicas"), "spec.minReplicas");
        assert_eq!(join_path("document[1]", ""), "document[1]");
        assert_eq!(join_path("", "spec"), "spec");
        assert_eq!(index_path("spec.metrics", 2), "spec.metrics[2]");
        assert_eq!(key_path("labels", "a.b"), "labels[\"a.b\"]");
        assert_eq!(
            Diagnostics::one("spec.maxReplicas", "must be at least 1, got 0").to_string(),
            "spec.maxReplicas: must be at least 1, got 0"
        );
    }

    #[test]
    fn caps_the_number_of_diagnostics() {
        let many = (0..500)
            .map(|i| Diagnostic::new(format!("f{i}"), "bad"))
            .collect();
        let capped = cap(many);
        assert_eq!(capped.len(), MAX_DIAGNOSTICS);
        assert!(capped[MAX_DIAGNOSTICS - 1].message.contains("401 more"));
    }
}
