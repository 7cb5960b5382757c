//! Reading policies from YAML text: size and encoding guards, the YAML stream, structural
//! checks against the schema, then the typed document and its semantic validation.
//!
//! Hostile input is bounded before it reaches the YAML parser: text over [`MAX_INPUT_BYTES`]
//! is refused outright, and so is flow nesting (`[`, `{`) deeper than [`MAX_FLOW_DEPTH`], because
//! the YAML scanner's time grows with the square of the flow depth, and block nesting deeper
//! than [`MAX_BLOCK_DEPTH`], because the parser holds every event of a document before it
//! checks its own nesting limit. Labels and files pass the same checks. Each document is built
//! within a budget of values and text ([`super::bounded`]), so anchors and aliases cannot
//! multiply a small text into a huge value. Every input ends in a diagnostic, never a panic, a
//! stack overflow, unbounded memory or unbounded time.

use std::sync::OnceLock;

use serde::de::DeserializeSeed;
use serde_yaml::Value as Yaml;

use super::bounded::{exhausted, Bounded, Budget};
use super::diagnostic::{serde_path, Diagnostic, Diagnostics};
use super::schema::json_schema;
use super::structure;
use super::types::ScalingPolicy;
use super::validate::{check_max_replicas, validate, MAX_REPLICAS};

/// The largest policy input accepted, in bytes (1 MiB): far above any real policy, far below
/// what could hurt the operator. Docker caps a service spec at a similar size anyway.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// The deepest `[`/`{` nesting accepted. Brackets are counted without regard to quoting, so
/// a string with this many unbalanced opening brackets is refused too; no policy needs either.
pub const MAX_FLOW_DEPTH: usize = 32;

/// The deepest block nesting accepted, as [`check_block_depth`] counts it: each indentation
/// still open and each collection opened on a line (`- - x`). Policies and compose files nest
/// a few levels. The parser's own limit (128) comes too late to bound memory: it holds the
/// whole document's events first, some 200 MB for a 1 MiB file of `- - - ...`.
pub const MAX_BLOCK_DEPTH: usize = 64;

/// One YAML document holding a whole `ScalingPolicy`, parsed and validated.
pub fn parse(text: &str) -> Result<ScalingPolicy, Diagnostics> {
    let mut documents = load(text)?;
    match documents.len() {
        1 => policy_from_value(documents.remove(0).1, Some(MAX_REPLICAS)),
        0 => Err(Diagnostics::one("", "no ScalingPolicy document found")),
        n => Err(Diagnostics::one(
            "",
            format!("expected one ScalingPolicy document, found {n}"),
        )),
    }
}

/// [`parse`] for raw bytes, refusing text that is not UTF-8 with the offset of the first bad byte.
pub fn parse_bytes(bytes: &[u8]) -> Result<ScalingPolicy, Diagnostics> {
    parse(text_of(bytes)?)
}

/// A YAML stream of policies separated by `---`, as `apply -f` and `validate -f` read.
///
/// Empty documents are skipped. When the stream holds more than one document, every path is
/// prefixed with the document's position (`document[1].spec.maxReplicas`). Two documents
/// targeting the same service are refused: one service has one policy.
pub fn parse_documents(text: &str) -> Result<Vec<ScalingPolicy>, Diagnostics> {
    let documents = load(text)?;
    if documents.is_empty() {
        return Err(Diagnostics::one("", "no ScalingPolicy document found"));
    }
    let numbered = documents.len() > 1;
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    let mut targets: Vec<(String, String)> = Vec::new();
    for (position, value) in documents {
        let prefix = if numbered {
            format!("document[{position}]")
        } else {
            String::new()
        };
        match policy_from_value(value, Some(MAX_REPLICAS)) {
            Ok(policy) => {
                let service = policy.service().to_owned();
                if let Some((_, first)) = targets.iter().find(|(s, _)| *s == service) {
                    problems.push(Diagnostic::new(
                        prefix.clone(),
                        format!("service {service:?} already has a policy in {first}; one service takes one policy"),
                    ));
                }
                targets.push((service, prefix));
                policies.push(policy);
            }
            Err(found) => problems.extend(found.within(&prefix).0),
        }
    }
    Diagnostics::result(problems)?;
    Ok(policies)
}

/// [`parse_documents`] for raw bytes.
pub fn parse_documents_bytes(bytes: &[u8]) -> Result<Vec<ScalingPolicy>, Diagnostics> {
    parse_documents(text_of(bytes)?)
}

/// The bytes as text, or a diagnostic naming where the first invalid byte is.
pub fn text_of(bytes: &[u8]) -> Result<&str, Diagnostics> {
    check_size(bytes.len())?;
    std::str::from_utf8(bytes).map_err(|error| {
        Diagnostics::one(
            "",
            format!(
                "is not UTF-8 text: invalid byte at offset {}",
                error.valid_up_to()
            ),
        )
    })
}

fn check_size(len: usize) -> Result<(), Diagnostics> {
    if len > MAX_INPUT_BYTES {
        return Err(Diagnostics::one(
            "",
            format!("is {len} bytes, larger than the {MAX_INPUT_BYTES}-byte limit for a policy"),
        ));
    }
    Ok(())
}

/// Refuses nesting beyond [`MAX_FLOW_DEPTH`] or [`MAX_BLOCK_DEPTH`], before the parser sees the
/// text: the one nesting check of every input, label or file.
fn check_nesting(text: &str) -> Result<(), Diagnostics> {
    check_flow_depth(text)?;
    check_block_depth(text)
}

/// Refuses flow nesting beyond [`MAX_FLOW_DEPTH`], counting every bracket: a scan that tried
/// to skip quoted text could be misled by an apostrophe in a plain scalar.
fn check_flow_depth(text: &str) -> Result<(), Diagnostics> {
    let mut depth = 0usize;
    for (offset, byte) in text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    let line = text[..offset].matches('\n').count() + 1;
                    return Err(Diagnostics::one(
                        "",
                        format!("nests '[' or '{{' deeper than {MAX_FLOW_DEPTH} levels (at line {line})"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses block nesting beyond [`MAX_BLOCK_DEPTH`], as counted line by line: the indentations
/// still open (a deeper line opens one, a shallower line closes those deeper than it) and, at
/// the start of the line's text, each `-`, `?` or `:` indicator that opens a collection on the
/// same line (`- - - x`), anchors and tags between them skipped. A block nested in another
/// opens at least one of these, so the count is never below half the real depth (a sequence
/// may sit at its parent key's indentation); it may be above it, for a block scalar whose lines
/// indent further and further, which no policy needs either. Every line counts, also inside
/// quotes or brackets: a scan that tried to skip them could be misled as the flow scan could.
fn check_block_depth(text: &str) -> Result<(), Diagnostics> {
    let mut open: Vec<usize> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let mut rest = line[indent..].trim_end();
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
            // A document marker ends every open block; a document may start on its line.
            open.clear();
            rest = &rest[3..];
        } else {
            while open.last().is_some_and(|&deeper| deeper > indent) {
                open.pop();
            }
            if open.last() != Some(&indent) {
                open.push(indent);
            }
        }
        let on_line = rest
            .split_whitespace()
            .filter(|token| !token.starts_with(['&', '!']))
            .take_while(|token| matches!(*token, "-" | "?" | ":"))
            .count();
        if open.len() + on_line > MAX_BLOCK_DEPTH {
            return Err(Diagnostics::one(
                "",
                format!(
                    "nests block collections deeper than {MAX_BLOCK_DEPTH} levels (at line {}): \
                     each indentation and each '- ', '? ' or ': ' on a line opens one",
                    number + 1
                ),
            ));
        }
    }
    Ok(())
}

/// The first YAML document of `text` as a value, built within the same budgets as a policy
/// (size, flow depth, and values once aliases are expanded): for compose files and the policy
/// labels inside them, which must not be decoded without bounds either.
pub fn load_yaml(text: &str) -> Result<Yaml, Diagnostics> {
    Ok(load(text)?
        .into_iter()
        .next()
        .map_or(Yaml::Null, |(_, value)| value))
}

/// The non-empty documents of a YAML stream with their positions in it.
pub(crate) fn load(text: &str) -> Result<Vec<(usize, Yaml)>, Diagnostics> {
    check_size(text.len())?;
    check_nesting(text)?;
    let mut documents = Vec::new();
    for (position, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        // One budget per document: a stream's documents are each a policy.
        let budget = Budget::for_input(text.len());
        match Bounded(&budget).deserialize(document) {
            Ok(Yaml::Null) => {}
            Ok(value) => documents.push((position, value)),
            Err(error) => {
                let prefix = if position > 0 {
                    format!("document[{position}]")
                } else {
                    String::new()
                };
                let message = match exhausted(&error) {
                    Some(which) => which.message(Budget::text_limit(text.len())),
                    None => format!("invalid YAML: {error}"),
                };
                return Err(Diagnostics::one(prefix, message));
            }
        }
    }
    Ok(documents)
}

/// A parsed YAML value as a validated policy: structure first, then meaning.
/// The policy `value` holds, validated. `ceiling` checks `spec.maxReplicas` as well: files are
/// checked against the default ceiling, labels by the operator against its own
/// (`--max-replicas-ceiling`).
pub(crate) fn policy_from_value(
    value: Yaml,
    ceiling: Option<u32>,
) -> Result<ScalingPolicy, Diagnostics> {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(json_schema);
    Diagnostics::result(structure::check(&value, schema))?;
    // The schema walk accepts only what serde accepts, so this is a safety net: it still
    // reports a path if the two ever disagree. It goes through JSON because the YAML value
    // only reads enums in their `!tag` form, while policies write `{variant: value}`.
    let json = serde_json::to_value(&value)
        .map_err(|error| Diagnostics::one("", format!("cannot be read: {error}")))?;
    let policy: ScalingPolicy = serde_path_to_error::deserialize(json).map_err(|error| {
        let path = serde_path(error.path());
        Diagnostics::one(path, error.into_inner().to_string())
    })?;
    let mut found = validate(&policy)
        .err()
        .map(|found| found.0)
        .unwrap_or_default();
    if let Some(Err(over)) = ceiling.map(|ceiling| check_max_replicas(&policy.spec, ceiling)) {
        found.push(over);
    }
    Diagnostics::result(found)?;
    Ok(policy)
}
