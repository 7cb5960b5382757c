//! Building a YAML value within a budget of nodes and text, so that anchors and aliases cannot
//! turn a small document into a huge value.
//!
//! The YAML parser expands every alias where it is used: an anchor of 16,500 scalars aliased
//! 10,840 times is a 93 KB text but 179 million values. The parser's own repetition limit
//! scales with the size of the text, so it lets that through. Counting every value as it is
//! built, aliases included, and stopping at a small budget bounds both the time and the memory
//! of any decode by the budget, whatever the text does.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value as Yaml};

/// The most YAML values (scalars, sequences, mappings, keys included) one policy document may
/// hold once its aliases are expanded. A full policy with every section holds a few hundred.
pub const MAX_NODES: usize = 10_000;

/// What a document may spend while it is built.
pub(crate) struct Budget {
    nodes: Cell<usize>,
    text_bytes: Cell<usize>,
}

/// Why a document was refused: which budget it ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exhausted {
    Nodes,
    Text,
}

impl Exhausted {
    /// The message of the diagnostic, naming the limit and the likely cause.
    pub(crate) fn message(self, text_limit: usize) -> String {
        match self {
            Self::Nodes => format!(
                "holds more than {MAX_NODES} YAML values once anchors and aliases (&name, *name) are expanded; every use of an alias counts, and a policy needs a few hundred"
            ),
            Self::Text => format!(
                "holds more than {text_limit} bytes of text once anchors and aliases (&name, *name) are expanded"
            ),
        }
    }
}

impl Budget {
    /// A budget for a document whose text is `input_len` bytes long: the node budget, and twice
    /// the text (YAML escapes such as `\L` decode to at most 1.5 times their length), so only
    /// aliases can run it out.
    pub(crate) fn for_input(input_len: usize) -> Self {
        Self {
            nodes: Cell::new(MAX_NODES),
            text_bytes: Cell::new(Self::text_limit(input_len)),
        }
    }

    /// The text budget this document started with, for the diagnostic.
    pub(crate) fn text_limit(input_len: usize) -> usize {
        input_len.saturating_mul(2).saturating_add(1024)
    }

    fn spend<E: de::Error>(&self, text: usize) -> Result<(), E> {
        let nodes = self.nodes.get();
        if nodes == 0 {
            return Err(E::custom(EXHAUSTED_NODES));
        }
        self.nodes.set(nodes - 1);
        let left = self.text_bytes.get();
        if text > left {
            return Err(E::custom(EXHAUSTED_TEXT));
        }
        self.text_bytes.set(left - text);
        Ok(())
    }
}

// Markers carried through the YAML library's error type; `exhausted` reads them back.
const EXHAUSTED_NODES: &str = "swarmpilot: node budget exhausted";
const EXHAUSTED_TEXT: &str = "swarmpilot: text budget exhausted";

/// Which budget an error from [`Budget`] ran out of, if it came from one.
pub(crate) fn exhausted(error: &serde_yaml::Error) -> Option<Exhausted> {
    // The library puts the path where it happened before the message (`b[31]: ...`).
    let text = error.to_string();
    if text.contains(EXHAUSTED_NODES) {
        Some(Exhausted::Nodes)
    } else if text.contains(EXHAUSTED_TEXT) {
        Some(Exhausted::Text)
    } else {
        None
    }
}

/// Builds one [`Yaml`] value, charging each value it builds to the budget.
#[derive(Clone, Copy)]
pub(crate) struct Bounded<'b>(pub(crate) &'b Budget);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Yaml;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Yaml;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Yaml, E> {
        self.0.spend(0)?;
        Ok(Yaml::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Yaml, E> {
        self.0.spend(0)?;
        Ok(Yaml::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Yaml, E> {
        self.0.spend(0)?;
        Ok(Yaml::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Yaml, E> {
        self.0.spend(0)?;
        Ok(Yaml::Number(value.into()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Yaml, E> {
        self.0.spend(value.len())?;
        Ok(Yaml::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Yaml, E> {
        self.0.spend(value.len())?;
        Ok(Yaml::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        self.0.spend(0)?;
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Yaml, A::Error> {
        self.0.spend(0)?;
        let mut sequence = Vec::new();
        while let Some(item) = items.next_element_seed(self)? {
            sequence.push(item);
        }
        Ok(Yaml::Sequence(sequence))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Yaml, A::Error> {
        self.0.spend(0)?;
        let mut mapping = Mapping::new();
        while let Some(key) = entries.next_key_seed(self)? {
            let value = entries.next_value_seed(self)?;
            match mapping.entry(key) {
                serde_yaml::mapping::Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                serde_yaml::mapping::Entry::Occupied(entry) => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate entry {}",
                        duplicate_key(entry.key())
                    )));
                }
            }
        }
        Ok(Yaml::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, tagged: A) -> Result<Yaml, A::Error> {
        use de::VariantAccess;
        self.0.spend(0)?;
        let (tag, contents): (String, _) = tagged.variant()?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Yaml::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: serde_yaml::value::Tag::new(tag),
            value,
        })))
    }
}

/// A repeated mapping key as the YAML library names it in its own duplicate-key error.
fn duplicate_key(key: &Yaml) -> String {
    match key {
        Yaml::Null => "with null key".to_owned(),
        Yaml::Bool(value) => format!("with key `{value}`"),
        Yaml::Number(value) => format!("with key {value}"),
        Yaml::String(value) => format!("with key {value:?}"),
        Yaml::Sequence(_) | Yaml::Mapping(_) | Yaml::Tagged(_) => "in YAML map".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Yaml, serde_yaml::Error> {
        let budget = Budget::for_input(text.len());
        Bounded(&budget).deserialize(serde_yaml::Deserializer::from_str(text))
    }

    #[test]
    fn builds_what_the_library_builds() {
        let text = "a: [1, -2, 3.5, true, null, x]\nb: {c: !t 7}\n'7': ~\n";
        let ours = build(text).unwrap();
        let theirs: Yaml = serde_yaml::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn aliases_count_each_time_they_are_used() {
        let items = vec!["1"; 100].join(", ");
        let uses = vec!["*a"; 200].join(", ");
        let text = format!("a: &a [{items}]\nb: [{uses}]\n");
        let error = build(&text).unwrap_err();
        assert_eq!(exhausted(&error), Some(Exhausted::Nodes), "{error}");
    }

    #[test]
    fn an_aliased_long_scalar_runs_out_of_text() {
        let text = format!("a: &a {}\nb: [*a, *a, *a]\n", "x".repeat(10_000));
        let error = build(&text).unwrap_err();
        assert_eq!(exhausted(&error), Some(Exhausted::Text), "{error}");
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "a: &a {x: 1}\nb: *a\nc: *a\n";
        let value = build(text).unwrap();
        assert_eq!(value["c"]["x"], Yaml::from(1));
    }
}
