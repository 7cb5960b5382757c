//! Structural checks of a YAML value against the policy's JSON Schema: unknown fields, wrong
//! types, missing fields and out-of-range numbers, every one reported with its path.
//!
//! serde stops at the first problem and cannot say where it was; walking the parsed value
//! against the schema generated from the same types finds all of them, and cannot drift from
//! the types. Only the schema features schemars emits for our types are interpreted.

use serde_json::{Map, Value as Json};
use serde_yaml::Value as Yaml;

use super::diagnostic::{index_path, key_path, show_text, Diagnostic};
use super::duration::HumanDuration;

/// Every structural problem of `value`, checked against `root` (a schema with `$defs`).
pub(crate) fn check(value: &Yaml, root: &Json) -> Vec<Diagnostic> {
    let mut walker = Walker {
        root,
        found: Vec::new(),
    };
    walker.walk(value, root, "");
    walker.found
}

/// The schema name of [`HumanDuration`], checked by parsing rather than by its pattern.
const DURATION: &str = "Duration";

struct Walker<'s> {
    root: &'s Json,
    found: Vec<Diagnostic>,
}

impl<'s> Walker<'s> {
    fn report(&mut self, path: &str, message: String) {
        self.found.push(Diagnostic::new(path, message));
    }

    /// The problems `value` has against `schema`, without reporting them.
    fn trial(&self, value: &Yaml, schema: &'s Json, path: &str) -> Vec<Diagnostic> {
        let mut trial = Walker {
            root: self.root,
            found: Vec::new(),
        };
        trial.walk(value, schema, path);
        trial.found
    }

    fn walk(&mut self, value: &Yaml, schema: &'s Json, path: &str) {
        if let Yaml::Tagged(tagged) = value {
            self.report(
                path,
                format!("YAML tags are not supported, got {}", tagged.tag),
            );
            return;
        }
        if let Some((name, target)) = self.referenced(schema) {
            match target {
                _ if name == DURATION => self.duration(value, path),
                Some(target) => self.walk(value, target, path),
                None => {}
            }
            return;
        }
        let Some(schema) = schema.as_object() else {
            return; // `true`: anything goes
        };
        if let Some(branches) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Json::as_array)
        {
            self.alternatives(value, branches, path);
            return;
        }
        if let Some(expected) = schema.get("type") {
            if !type_matches(value, expected) {
                self.report(
                    path,
                    format!("must be {}, got {}", type_names(expected), describe(value)),
                );
                return;
            }
        }
        if let Some(allowed) = schema
            .get("enum")
            .and_then(Json::as_array)
            .map(|v| v.as_slice())
            .or_else(|| schema.get("const").map(std::slice::from_ref))
        {
            if !allowed.iter().any(|candidate| same(value, candidate)) {
                let expected = match allowed {
                    [only] => plain(only),
                    _ => format!("one of {}", list(allowed)),
                };
                self.report(path, format!("must be {expected}, got {}", describe(value)));
                return;
            }
        }
        match value {
            Yaml::Number(_) => self.range(value, schema, path),
            Yaml::Sequence(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.walk(item, item_schema, &index_path(path, index));
                    }
                }
            }
            Yaml::Mapping(mapping) => self.object(mapping, schema, path),
            _ => {}
        }
    }

    fn duration(&mut self, value: &Yaml, path: &str) {
        match value {
            Yaml::String(text) => {
                if let Err(error) = text.parse::<HumanDuration>() {
                    self.report(path, error.to_string());
                }
            }
            Yaml::Number(number) => self.report(
                path,
                format!(
                    "is not a duration like 15s, 5m or 1h30m, got {number} (a duration needs a unit, e.g. {number}s)"
                ),
            ),
            other => self.report(
                path,
                format!(
                    "must be a duration like 15s, 5m or 1h30m, got {}",
                    describe(other)
                ),
            ),
        }
    }

    /// `oneOf` / `anyOf`: schemars uses them for `Option<T>` (T or null) and for enums.
    fn alternatives(&mut self, value: &Yaml, branches: &'s [Json], path: &str) {
        let non_null: Vec<&'s Json> = branches
            .iter()
            .filter(|branch| branch.get("type") != Some(&Json::String("null".into())))
            .collect();
        if value.is_null() && non_null.len() < branches.len() {
            return;
        }
        let mut shaped = Vec::new();
        for branch in &non_null {
            let problems = self.trial(value, branch, path);
            if problems.is_empty() {
                return;
            }
            if non_null.len() == 1 || self.same_shape(value, branch) {
                shaped.push(problems);
            }
        }
        if shaped.len() == 1 {
            // The value has exactly one alternative's shape (e.g. the right single key of an
            // enum variant): that alternative's problems are the precise ones.
            self.found.extend(shaped.remove(0));
        } else {
            let expected: Vec<String> = non_null.iter().map(|b| self.shape(b)).collect();
            self.report(
                path,
                format!(
                    "must be one of {}, got {}",
                    expected.join(", "),
                    describe(value)
                ),
            );
        }
    }

    /// Whether a mapping has exactly the fields an object alternative allows and requires.
    fn same_shape(&self, value: &Yaml, schema: &'s Json) -> bool {
        let schema = self.resolve(schema);
        let (Yaml::Mapping(mapping), Some(properties)) =
            (value, schema.get("properties").and_then(Json::as_object))
        else {
            return false;
        };
        let required = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|v| v.as_slice())
            .unwrap_or_default();
        mapping
            .keys()
            .all(|key| key.as_str().is_some_and(|k| properties.contains_key(k)))
            && required
                .iter()
                .filter_map(Json::as_str)
                .all(|name| mapping.contains_key(name))
    }

    fn resolve(&self, schema: &'s Json) -> &'s Json {
        match self.referenced(schema) {
            Some((_, Some(target))) => target,
            _ => schema,
        }
    }

    /// The name a `$ref` schema points to, and its definition.
    fn referenced(&self, schema: &'s Json) -> Option<(&'s str, Option<&'s Json>)> {
        let name = schema.get("$ref")?.as_str()?.trim_start_matches("#/$defs/");
        Some((name, self.root.get("$defs").and_then(|defs| defs.get(name))))
    }

    /// A short human description of one alternative: `hold`, `{replicas: N}`.
    fn shape(&self, schema: &Json) -> String {
        if let Some(constant) = schema.get("const") {
            return plain(constant);
        }
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            return list(values);
        }
        if let Some((name, target)) = self.referenced(schema) {
            return match target {
                Some(target) if name != DURATION => self.shape(target),
                _ => "a duration".into(),
            };
        }
        if let Some(properties) = schema.get("properties").and_then(Json::as_object) {
            let fields: Vec<String> = properties
                .iter()
                .map(|(name, field)| format!("{name}: {}", placeholder(field)))
                .collect();
            return format!("{{{}}}", fields.join(", "));
        }
        schema
            .get("type")
            .map(type_names)
            .unwrap_or_else(|| "a value".into())
    }

    fn range(&mut self, value: &Yaml, schema: &Map<String, Json>, path: &str) {
        let Some(number) = value.as_f64() else { return };
        if !number.is_finite() {
            self.report(
                path,
                format!("must be a finite number, got {}", describe(value)),
            );
            return;
        }
        let (format_min, format_max) = match schema.get("format").and_then(Json::as_str) {
            Some("uint16") => (Some(0.0), Some(f64::from(u16::MAX))),
            Some("uint32") => (Some(0.0), Some(f64::from(u32::MAX))),
            _ => (None, None),
        };
        let minimum = schema.get("minimum").and_then(Json::as_f64).or(format_min);
        let maximum = schema.get("maximum").and_then(Json::as_f64).or(format_max);
        if let Some(minimum) = minimum.filter(|&minimum| number < minimum) {
            self.report(
                path,
                format!("must be at least {minimum}, got {}", describe(value)),
            );
        } else if let Some(maximum) = maximum.filter(|&maximum| number > maximum) {
            self.report(
                path,
                format!("must be at most {maximum}, got {}", describe(value)),
            );
        }
    }

    fn object(&mut self, mapping: &serde_yaml::Mapping, schema: &'s Map<String, Json>, path: &str) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        for (key, field) in mapping {
            let Some(name) = key.as_str() else {
                self.report(
                    path,
                    format!("field names must be strings, got {}", describe(key)),
                );
                continue;
            };
            let field_path = key_path(path, name);
            if let Some(names) = schema.get("propertyNames") {
                let key_problems = self.trial(key, names, &field_path);
                if !key_problems.is_empty() {
                    self.found.extend(key_problems);
                    continue;
                }
            }
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(field_schema), _) => self.walk(field, field_schema, &field_path),
                (None, Some(Json::Bool(false))) => {
                    self.report(&field_path, unknown_field(name, properties))
                }
                (None, Some(additional)) => self.walk(field, additional, &field_path),
                (None, None) => {}
            }
        }
        let required = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|v| v.as_slice())
            .unwrap_or_default();
        for name in required.iter().filter_map(Json::as_str) {
            if !mapping.contains_key(name) {
                self.report(&key_path(path, name), "missing required field".into());
            }
        }
    }
}

fn unknown_field(name: &str, properties: Option<&Map<String, Json>>) -> String {
    let known: Vec<&str> = properties
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .collect();
    let suggestion = known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| format!(" (did you mean {candidate}?)"))
        .unwrap_or_default();
    format!(
        "unknown field{suggestion}, expected one of {}",
        known.join(", ")
    )
}

fn type_matches(value: &Yaml, expected: &Json) -> bool {
    match expected {
        Json::String(name) => one_type_matches(value, name),
        Json::Array(names) => names
            .iter()
            .filter_map(Json::as_str)
            .any(|name| one_type_matches(value, name)),
        _ => true,
    }
}

fn one_type_matches(value: &Yaml, name: &str) -> bool {
    match (name, value) {
        ("object", Yaml::Mapping(_))
        | ("array", Yaml::Sequence(_))
        | ("string", Yaml::String(_))
        | ("boolean", Yaml::Bool(_))
        | ("null", Yaml::Null)
        | ("number", Yaml::Number(_)) => true,
        ("integer", Yaml::Number(number)) => number.is_i64() || number.is_u64(),
        _ => false,
    }
}

fn type_names(expected: &Json) -> String {
    let names: Vec<&str> = match expected {
        Json::String(name) => vec![name.as_str()],
        Json::Array(names) => names
            .iter()
            .filter_map(Json::as_str)
            .filter(|name| *name != "null")
            .collect(),
        _ => vec![],
    };
    let names: Vec<&str> = names
        .into_iter()
        .map(|name| match name {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "boolean" => "true or false",
            "integer" => "a whole number",
            "number" => "a number",
            _ => "null",
        })
        .collect();
    names.join(" or ")
}

/// What a field of an alternative holds, for `{replicas: N}`.
fn placeholder(field: &Json) -> &'static str {
    match field.get("type").and_then(Json::as_str) {
        Some("integer") => "N",
        Some("number") => "X",
        _ => "...",
    }
}

fn same(value: &Yaml, candidate: &Json) -> bool {
    match (value, candidate) {
        (Yaml::String(text), Json::String(expected)) => text == expected,
        (Yaml::Bool(flag), Json::Bool(expected)) => flag == expected,
        (Yaml::Number(number), Json::Number(expected)) => number.as_f64() == expected.as_f64(),
        (Yaml::Null, Json::Null) => true,
        _ => false,
    }
}

fn plain(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn list(values: &[Json]) -> String {
    values.iter().map(plain).collect::<Vec<_>>().join(", ")
}

/// The offending value as shown in a message.
pub(crate) fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "nothing (null)".into(),
        Yaml::Bool(flag) => flag.to_string(),
        Yaml::Number(number) => number.to_string(),
        Yaml::String(text) => format!("the string {}", show_text(text)),
        Yaml::Sequence(items) => format!("a list of {} items", items.len()),
        Yaml::Mapping(mapping) => {
            let keys: Vec<String> = mapping
                .keys()
                .take(4)
                .map(|key| key.as_str().map_or_else(|| "?".into(), str::to_owned))
                .collect();
            let more = if mapping.len() > 4 { ", ..." } else { "" };
            format!("a mapping {{{}{more}}}", keys.join(", "))
        }
        Yaml::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::schema::json_schema;

    fn problems(yaml: &str) -> Vec<String> {
        let value: Yaml = serde_yaml::from_str(yaml).unwrap();
        check(&value, &json_schema())
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn reports_every_structural_problem_with_its_path() {
        let found = problems(
            "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
             spec:\n  minReplicas: two\n  mode: fast\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    targett: {utilization: 70}\n",
        );
        assert_eq!(
            found,
            vec![
                "spec.minReplicas: must be a whole number, got the string \"two\"",
                "spec.mode: must be one of enforce, recommend, got the string \"fast\"",
                "spec.metrics[0].targett: unknown field (did you mean target?), expected one of activation, docker, name, prometheus, rabbitmq, redis, scrape, target",
                "spec.metrics[0].target: missing required field",
                "spec.maxReplicas: missing required field",
            ]
        );
    }

    #[test]
    fn enum_variants_with_data_report_inside_the_variant() {
        let found = problems(
            "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  maxReplicas: 3\n  metrics: []\n  fallback: {replicas: -1}\n",
        );
        assert_eq!(
            found,
            vec!["spec.fallback.replicas: must be at least 0, got -1"]
        );
        let found = problems(
            "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  maxReplicas: 3\n  metrics: []\n  fallback: sometimes\n",
        );
        assert_eq!(
            found,
            vec!["spec.fallback: must be one of hold, {currentIfHigher: N}, {replicas: N}, {currentIfHigher: ..., failureThreshold: N, replicas: ...}, got the string \"sometimes\""]
        );
    }
}
