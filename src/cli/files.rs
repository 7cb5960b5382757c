//! Reading policy files for `validate -f` and `apply -f`: a file, every `*.yaml`/`*.yml` in a
//! directory (not recursive, like `kubectl -f DIR`), or `-` for stdin. A compose file (a
//! `services` mapping) is read for the policies in its services' `deploy.labels`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::policy::{
    compose, load_yaml, parse_documents_bytes, text_of, Diagnostics, ScalingPolicy, MAX_INPUT_BYTES,
};

/// One input and what it holds: its policies, or every problem found in it.
#[derive(Debug)]
pub struct PolicyFile {
    /// The file's path as given, or `<stdin>`.
    pub name: String,
    pub policies: Result<Vec<ScalingPolicy>, Diagnostics>,
    /// A compose file: its policies are deployed with the stack, not applied one by one.
    pub compose: bool,
}

/// Every policy file named by `paths`, each parsed and validated. An input that cannot be read
/// at all (missing file, empty directory) is an error; a file with invalid content is not.
pub fn load_policies(paths: &[PathBuf]) -> anyhow::Result<Vec<PolicyFile>> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let bytes = read_limited(std::io::stdin().lock()).context("cannot read stdin")?;
            files.push(parsed("<stdin>".into(), bytes));
        } else if path.is_dir() {
            let found = policy_files_in(path)?;
            if found.is_empty() {
                bail!("no .yaml or .yml files in {}", path.display());
            }
            for file in found {
                files.push(read_file(&file)?);
            }
        } else {
            files.push(read_file(path)?);
        }
    }
    Ok(files)
}

fn read_file(path: &Path) -> anyhow::Result<PolicyFile> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = read_limited(file).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parsed(path.display().to_string(), bytes))
}

fn parsed(name: String, bytes: Option<Vec<u8>>) -> PolicyFile {
    let Some(bytes) = bytes else {
        let too_large = Diagnostics::one(
            "",
            format!("is larger than the {MAX_INPUT_BYTES}-byte limit for a policy"),
        );
        return PolicyFile {
            name,
            policies: Err(too_large),
            compose: false,
        };
    };
    match compose_document(&bytes) {
        Some(document) => PolicyFile {
            name,
            policies: compose::services(&document).and_then(|found| compose::validate(&found)),
            compose: true,
        },
        None => PolicyFile {
            name,
            policies: parse_documents_bytes(&bytes),
            compose: false,
        },
    }
}

/// The input as a compose document, when it is one. Compose files are the user's own files
/// (never labels from the Swarm), decoded within a policy's budgets all the same: a file of
/// aliases is refused by the policy parser's message, not expanded.
fn compose_document(bytes: &[u8]) -> Option<serde_yaml::Value> {
    let text = text_of(bytes).ok()?;
    let document = load_yaml(text).ok()?;
    compose::is_compose(&document).then_some(document)
}

/// The whole input, or `None` when it exceeds [`MAX_INPUT_BYTES`] (not read further).
fn read_limited(reader: impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() <= MAX_INPUT_BYTES).then_some(bytes))
}

fn policy_files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
