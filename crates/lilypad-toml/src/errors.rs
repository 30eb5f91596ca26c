//! Collecting every problem in a file, so it is fixed in one pass.

use lilypad_types::suggest::closest;

use crate::field::{Field, FieldError};

/// Every problem found so far, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    list: Vec<FieldError>,
}

impl Errors {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn push(&mut self, error: FieldError) {
        self.list.push(error);
    }

    /// Records a problem at `path`.
    pub fn error(
        &mut self,
        path: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(FieldError::new(path, problem, fix));
    }

    /// The value, or `None` with the problem recorded.
    pub fn ok<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Records an "unknown key" problem, with "did you mean …?", for each key of `table` that is
    /// not in `known`. `prefix` is prepended to the key in the path (e.g. `"resources."`).
    pub fn unknown_keys(&mut self, table: &toml::Table, prefix: &str, known: &[&str]) {
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            self.push(unknown_key(&format!("{prefix}{key}"), key, known));
        }
    }

    /// A string at `path`.
    pub fn string<'v>(&mut self, path: &str, v: &'v toml::Value, fix: &str) -> Option<&'v str> {
        self.ok(Field::toml(path, v).string(fix))
    }

    /// `true` or `false` at `path`.
    pub fn boolean(&mut self, path: &str, v: &toml::Value) -> Option<bool> {
        self.ok(Field::toml(path, v).boolean())
    }

    /// A finite number at `path`.
    pub fn number(&mut self, path: &str, v: &toml::Value, fix: &str) -> Option<f64> {
        self.ok(Field::toml(path, v).number(fix))
    }

    /// A size in bytes at `path`.
    pub fn size(&mut self, path: &str, v: &toml::Value, fix: &str) -> Option<u64> {
        self.ok(Field::toml(path, v).size(fix))
    }

    /// A table at `path`.
    pub fn table<'v>(
        &mut self,
        path: &str,
        v: &'v toml::Value,
        fix: &str,
    ) -> Option<&'v toml::Table> {
        self.ok(Field::toml(path, v).table(fix))
    }

    /// An array of strings at `path`; every item that is not a string is reported.
    pub fn string_list(&mut self, path: &str, v: &toml::Value, fix: &str) -> Option<Vec<String>> {
        let items = self.ok(Field::toml(path, v).array("an array of strings", fix))?;
        let before = self.len();
        let out: Vec<String> = items
            .iter()
            .filter_map(|item| self.ok(item.string(fix)).map(str::to_owned))
            .collect();
        (self.len() == before).then_some(out)
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.list
    }
}

/// "unknown key" at `path`, with the known key it most likely meant, or the list of known keys.
pub fn unknown_key(path: &str, key: &str, known: &[&str]) -> FieldError {
    let fix = match closest(key, known) {
        Some(k) => format!("did you mean {k}?"),
        None => format!("remove it; known keys here are {}", known.join(", ")),
    };
    FieldError::new(path, format!("unknown key {key:?}"), fix)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_problem_is_kept_with_its_path() {
        let doc: toml::Table = "imgae = 1\nlist = [\"a\", 2, false]\nok = [\"x\"]"
            .parse()
            .unwrap();
        let mut errors = Errors::new();
        errors.unknown_keys(&doc, "", &["image", "list", "ok"]);
        assert_eq!(
            errors.string_list("list", &doc["list"], "strings only"),
            None
        );
        assert_eq!(
            errors.string_list("ok", &doc["ok"], "strings only"),
            Some(vec!["x".to_owned()])
        );
        let shown: Vec<String> = errors.into_vec().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "imgae: unknown key \"imgae\" (fix: did you mean image?)",
                "list[1]: expected a string, found an integer (fix: strings only)",
                "list[2]: expected a string, found a boolean (fix: strings only)",
            ]
        );
    }

    #[test]
    fn an_unknown_key_with_no_likely_match_lists_the_known_ones() {
        let e = unknown_key("x.zzzzzz", "zzzzzz", &["cpu", "memory"]);
        assert_eq!(e.fix, "remove it; known keys here are cpu, memory");
    }
}
