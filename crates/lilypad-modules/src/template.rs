//! Argument and environment templates: literal text with `{input}` placeholders. `{{` and `}}`
//! stand for literal braces. A placeholder is replaced by the input's value as one piece of text:
//! nothing is split, quoted or interpreted, so a value can never become more than the argument it
//! sits in.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Input(String),
}

/// A parsed template such as `"--size={size}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Whether `name` is a valid input name: a letter or `_`, then letters, digits, `_` or `-`.
pub(crate) fn valid_input_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Template {
    /// A template that is exactly `text`, with no placeholders.
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            parts: vec![Part::Literal(text.clone())],
            source: text,
        }
    }

    /// Parses `source`; the error says what is wrong with it.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "unmatched `}}` at byte {at} of {source:?} (write `}}}}` for a literal brace)"
                    ));
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "unclosed `{{` at byte {at} of {source:?} (close it as {{name}}, or write `{{{{` for a literal brace)"
                        ));
                    }
                    if !valid_input_name(&name) {
                        return Err(format!(
                            "{{{name}}} in {source:?} is not a placeholder: input names start with a letter or _ and hold letters, digits, _ or -"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Input(name));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The inputs it refers to, in order (with repeats).
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Input(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether it has no placeholder.
    pub fn is_literal(&self) -> bool {
        self.inputs().next().is_none()
    }

    /// The text with every placeholder replaced by its value, or `None` when an input it names
    /// has no value (an optional input the job left out).
    pub fn render(&self, values: &BTreeMap<String, String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Input(name) => out.push_str(values.get(name)?),
            }
        }
        Some(out)
    }

    /// The length of its literal text in bytes.
    pub(crate) fn literal_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.len(),
                Part::Input(_) => 0,
            })
            .sum()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_placeholders_as_whole_text_without_interpreting_it() {
        let t = Template::parse("--size={size}x{{literal}}").unwrap();
        assert_eq!(t.inputs().collect::<Vec<_>>(), ["size"]);
        assert_eq!(
            t.render(&values(&[("size", "$(rm -rf /); `id` \"a b\" {x}")]))
                .unwrap(),
            "--size=$(rm -rf /); `id` \"a b\" {x}x{literal}"
        );
        assert_eq!(t.render(&values(&[])), None);
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn says_what_is_wrong_with_a_bad_template() {
        assert!(
            Template::parse("{open")
                .unwrap_err()
                .contains("unclosed `{`"),
            "unclosed"
        );
        assert!(
            Template::parse("a}b")
                .unwrap_err()
                .contains("unmatched `}`")
        );
        assert!(
            Template::parse("{}")
                .unwrap_err()
                .contains("is not a placeholder")
        );
        assert!(
            Template::parse("{two words}")
                .unwrap_err()
                .contains("is not a placeholder")
        );
    }
}
