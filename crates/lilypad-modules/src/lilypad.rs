//! Lilypad's module format: a `lilypad_module.json.tmpl` rendered with Go `text/template`
//! semantics (the `gtmpl` crate), every input JSON-encoded before it is substituted, then parsed
//! as strict JSON and mapped to a [`Module`]. What this executor cannot honour is refused with
//! the reason; no field is ignored unless `docs/modules.md` says why it changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use gtmpl::{FuncError, Value};
use lilypad_types::suggest::closest;
use serde_json::{Map, Value as Json};

use crate::OUTPUTS_DIR;
use crate::git::GitModuleRef;
use crate::module::{ImageRef, InlineOutput, Module, ModuleFormat, ModuleRef, Network, Resources};
use crate::template::Template;

/// What a provider lets Lilypad modules do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LilypadPolicy {
    /// Whether `Network.Type: Full` is run (on Docker's bridge); refused when false.
    pub allow_network: bool,
}

/// One problem in a rendered module, by its JSON path (e.g. `job.Spec.Docker.Image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Where, as a dotted path of the keys as the module wrote them.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// What would fix it.
    pub fix: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.path, self.problem, self.fix)
    }
}

/// Why a Lilypad module cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LilypadError {
    /// This provider (or solver) does not serve git modules from that repository.
    #[error("{url} is not a repository this service runs modules from (it runs {}) (fix: pick a provider that lists it, or start this one with --git-modules naming a prefix of it)", if prefixes.is_empty() { "none".to_owned() } else { prefixes.join(", ") })]
    NotServed {
        /// The repository.
        url: String,
        /// The URL prefixes served.
        prefixes: Vec<String>,
    },
    /// Fetching or reading the module failed.
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// The template is not a valid Go template, or failed while rendering.
    #[error(
        "module {module}: the template does not render: {problem} (fix: correct the template; Go text/template syntax, with the subst and js functions)"
    )]
    Template {
        /// The module.
        module: String,
        /// gtmpl's message.
        problem: String,
    },
    /// The job gave inputs that the template never uses.
    #[error("module {module}: input{} {} not used by its template (fix: {})", if unused.len() == 1 { "" } else { "s" }, unused.join(", "), unused_fix(unused, used))]
    UnusedInputs {
        /// The module.
        module: String,
        /// Inputs given and not used.
        unused: Vec<String>,
        /// Inputs the template uses.
        used: Vec<String>,
    },
    /// The rendered template is not JSON.
    #[error(
        "module {module}: the rendered template is not valid JSON: {problem}, in {excerpt:?} (fix: {})",
        json_fix(missing)
    )]
    Json {
        /// The module.
        module: String,
        /// serde_json's message (with line and column).
        problem: String,
        /// The line where it failed.
        excerpt: String,
        /// Inputs the job did not give without which the template is not JSON (they render
        /// empty, as Go renders a missing key).
        missing: Vec<String>,
    },
    /// The module asks for what this executor cannot do, or has fields it does not know.
    #[error("{}", Fields { module, errors })]
    Fields {
        /// The module.
        module: String,
        /// Every problem.
        errors: Vec<FieldProblem>,
    },
}

fn unused_fix(unused: &[String], used: &[String]) -> String {
    let names: Vec<&str> = used.iter().map(String::as_str).collect();
    if let [one] = unused
        && let Some(s) = closest(one, &names)
    {
        return format!("did you mean {s}?");
    }
    if used.is_empty() {
        "this module takes no inputs; remove them".to_owned()
    } else {
        format!("remove them; the template uses {}", used.join(", "))
    }
}

fn json_fix(missing: &[String]) -> String {
    if missing.is_empty() {
        "correct the template so that every input, JSON-encoded, renders valid JSON".to_owned()
    } else {
        format!(
            "the template needs {}, which the job did not give: add {}",
            missing.join(", "),
            missing
                .iter()
                .map(|m| format!("-i {m}=VALUE"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

struct Fields<'a> {
    module: &'a str,
    errors: &'a [FieldProblem],
}

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} problem{} in module {}:",
            if n == 1 { "" } else { "s" },
            self.module
        )?;
        for e in self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// The input names a template refers to as `.Name` (outside string literals in its actions).
pub fn referenced_inputs(template: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let action = &rest[start + 2..];
        let end = action.find("}}").unwrap_or(action.len());
        let body = &action[..end];
        let mut chars = body.char_indices().peekable();
        let mut prev = ' ';
        while let Some((i, c)) = chars.next() {
            match c {
                '"' | '`' => {
                    let quote = c;
                    let mut escaped = false;
                    for (_, d) in chars.by_ref() {
                        if quote == '"' && d == '\\' && !escaped {
                            escaped = true;
                            continue;
                        }
                        if d == quote && !escaped {
                            break;
                        }
                        escaped = false;
                    }
                    prev = quote;
                    continue;
                }
                '.' if !(prev.is_alphanumeric() || prev == '_' || prev == ')') => {
                    let name: String = body[i + 1..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name.chars().next().is_some_and(|c| !c.is_ascii_digit()) {
                        names.insert(name);
                    }
                }
                _ => {}
            }
            prev = c;
        }
        rest = &action[end.min(action.len())..];
    }
    names
}

fn string_arg(args: &[Value], i: usize, func: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(FuncError::Generic(format!(
            "{func}: argument {} must be a string, got {other}",
            i + 1
        ))),
        None => Err(FuncError::AtLeastXArgs(func.to_owned(), i + 1)),
    }
}

/// `subst FORMAT INPUT...`: each input (JSON-encoded, as every input is) decoded, then put in
/// FORMAT's `%s` (or `%v`) in turn; `%%` is a percent sign. The result is escaped for the inside
/// of a JSON string, since that is where templates use it (`"{{ subst "MSG=%s" .Message }}"`).
fn subst(args: &[Value]) -> Result<Value, FuncError> {
    let format = string_arg(args, 0, "subst")?;
    let mut values = Vec::new();
    for i in 1..args.len() {
        let encoded = string_arg(args, i, "subst")?;
        let decoded: String = serde_json::from_str(&encoded).map_err(|_| {
            FuncError::Generic(format!(
                "subst: argument {} is not a JSON-encoded string (pass an input, e.g. .Message)",
                i + 1
            ))
        })?;
        values.push(decoded);
    }
    let mut out = String::new();
    let mut next = values.into_iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'v') => match next.next() {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(FuncError::Generic(format!(
                        "subst: {format:?} has more %s than inputs given"
                    )));
                }
            },
            other => {
                return Err(FuncError::Generic(format!(
                    "subst: {format:?} uses %{}, but only %s, %v and %% are supported",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        }
    }
    if next.next().is_some() {
        return Err(FuncError::Generic(format!(
            "subst: more inputs than %s in {format:?}"
        )));
    }
    let quoted = serde_json::to_string(&out).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(quoted[1..quoted.len() - 1].to_owned()))
}

/// Go's `js` template function: the text escaped as JavaScript would need it.
fn js(args: &[Value]) -> Result<Value, FuncError> {
    let mut text = String::new();
    for (i, a) in args.iter().enumerate() {
        match a {
            Value::String(s) => text.push_str(s),
            _ => text.push_str(&string_arg(args, i, "js")?),
        }
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

/// Renders `template` as Lilypad does: each input JSON-encoded (so `{{.Message}}` becomes a
/// quoted JSON string), an input the template uses but the job leaves out rendered empty (Go's
/// zero value for a missing key, so `{{if .X}}` takes its `else`), with `subst` and `js`.
pub fn render(
    module: &str,
    template: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<String, LilypadError> {
    let used = referenced_inputs(template);
    let unused: Vec<String> = inputs
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        return Err(LilypadError::UnusedInputs {
            module: module.to_owned(),
            unused,
            used: used.into_iter().collect(),
        });
    }
    let mut context = HashMap::new();
    for name in &used {
        let value = match inputs.get(name) {
            Some(v) => serde_json::to_string(v).map_err(|e| LilypadError::Template {
                module: module.to_owned(),
                problem: e.to_string(),
            })?,
            None => String::new(),
        };
        context.insert(name.clone(), Value::String(value));
    }
    let template_error = |problem: String| LilypadError::Template {
        module: module.to_owned(),
        problem,
    };
    let mut t = gtmpl::Template::default();
    t.add_func("subst", subst);
    t.add_func("js", js);
    t.parse(template)
        .map_err(|e| template_error(e.to_string()))?;
    t.render(&gtmpl::Context::from(Value::Object(context)))
        .map_err(|e| template_error(e.to_string()))
}

/// Parses a rendered template as strict JSON. When it is not JSON, and would be had the job
/// given the inputs it left out (tried as empty strings), those inputs are named as the cause.
pub fn parse_json(
    module: &str,
    rendered: &str,
    template: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<Json, LilypadError> {
    let mut de = serde_json::Deserializer::from_str(rendered);
    let parsed =
        serde::Deserialize::deserialize(&mut de).and_then(|Strict(v)| de.end().map(|()| v));
    parsed.map_err(|e| {
        let excerpt = rendered
            .lines()
            .nth(e.line().saturating_sub(1))
            .unwrap_or("")
            .trim()
            .chars()
            .take(120)
            .collect();
        let missing: Vec<String> = referenced_inputs(template)
            .into_iter()
            .filter(|n| !inputs.contains_key(n))
            .collect();
        let parses = |given: &[&String]| {
            let mut filled = inputs.clone();
            filled.extend(given.iter().map(|m| ((*m).clone(), String::new())));
            render(module, template, &filled).is_ok_and(|r| {
                let mut de = serde_json::Deserializer::from_str(&r);
                <Strict as serde::Deserialize>::deserialize(&mut de).is_ok() && de.end().is_ok()
            })
        };
        let all: Vec<&String> = missing.iter().collect();
        let needed = if !missing.is_empty() && parses(&all) {
            // The ones without which it still fails, the others given.
            missing
                .iter()
                .filter(|m| !parses(&all.iter().copied().filter(|o| o != m).collect::<Vec<_>>()))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        LilypadError::Json {
            module: module.to_owned(),
            problem: e.to_string(),
            excerpt,
            missing: needed,
        }
    })
}

/// A JSON value read with every object key given once: a key given twice is an error (Go's
/// `encoding/json` would keep the last, silently).
struct Strict(Json);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} is given twice"
                )));
            }
        }
        Ok(Json::Object(out))
    }
}

/// An object being read: keys matched as Go's `encoding/json` matches them (exactly, else
/// ignoring case), and every key not read reported as unknown.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Json>,
    read: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(path: &str, value: &'a Json, errors: &mut Vec<FieldProblem>) -> Option<Self> {
        match value {
            Json::Object(map) => Some(Self {
                path: path.to_owned(),
                map,
                read: BTreeSet::new(),
            }),
            Json::Null => None,
            other => {
                errors.push(problem(
                    path,
                    format!("must be an object, not {}", kind(other)),
                    "write it as { ... }",
                ));
                None
            }
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value under `key`, with the path to name it by.
    fn get(&mut self, key: &str) -> Option<(String, &'a Json)> {
        let found = self
            .map
            .get_key_value(key)
            .or_else(|| self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)));
        let (k, v) = found?;
        self.read.insert(k.as_str());
        (!v.is_null()).then(|| (self.at(k), v))
    }

    /// Reports every key not read, with the key it most likely meant.
    fn finish(self, known: &[&str], errors: &mut Vec<FieldProblem>) {
        for k in self.map.keys() {
            if !self.read.contains(k.as_str()) {
                let fix = match closest(k, known) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("remove it; this executor knows {} here", known.join(", ")),
                };
                errors.push(problem(&self.at(k), "unknown field", &fix));
            }
        }
    }
}

fn problem(path: &str, problem: impl Into<String>, fix: impl Into<String>) -> FieldProblem {
    FieldProblem {
        path: path.to_owned(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn string<'a>(path: &str, v: &'a Json, errors: &mut Vec<FieldProblem>) -> Option<&'a str> {
    match v {
        Json::String(s) => Some(s),
        other => {
            errors.push(problem(
                path,
                format!("must be a string, not {}", kind(other)),
                "write it in double quotes",
            ));
            None
        }
    }
}

fn whole(path: &str, v: &Json, errors: &mut Vec<FieldProblem>) -> Option<u64> {
    match v.as_u64() {
        Some(n) => Some(n),
        None => {
            errors.push(problem(
                path,
                format!("must be a whole number, not {v}"),
                "write a whole number such as 1000",
            ));
            None
        }
    }
}

fn strings(path: &str, v: &Json, errors: &mut Vec<FieldProblem>) -> Option<Vec<String>> {
    let Json::Array(items) = v else {
        errors.push(problem(
            path,
            format!("must be an array of strings, not {}", kind(v)),
            "write it as [\"...\", \"...\"]",
        ));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item {
            Json::String(s) if s.contains('\0') => {
                ok = false;
                errors.push(problem(
                    &format!("{path}[{i}]"),
                    "contains a NUL character, which no argument or variable can carry",
                    "remove it",
                ));
            }
            Json::String(s) => out.push(s.clone()),
            other => {
                ok = false;
                errors.push(problem(
                    &format!("{path}[{i}]"),
                    format!("must be a string, not {}", kind(other)),
                    "quote it",
                ));
            }
        }
    }
    ok.then_some(out)
}

/// Fields accepted only when empty: Bacalhau's defaults, which mean nothing is asked.
/// `Spec.inputs`: Bacalhau storage specs. Those from IPFS (`{"StorageSource": "IPFS", "CID": ...,
/// "Path": ...}`) become CID inputs the provider fetches and mounts read-only at `Path` (`/inputs`
/// itself allowed: a Lilypad module has no input files of its own there); URLs and other sources
/// are refused.
fn read_storage_inputs(
    p: &str,
    v: &Json,
    out: &mut BTreeMap<String, crate::InputSpec>,
    errors: &mut Vec<FieldProblem>,
) {
    let items = match v {
        Json::Array(items) => items,
        other => {
            errors.push(problem(
                p,
                format!("must be an array, not {}", kind(other)),
                "write [{\"StorageSource\": \"IPFS\", \"CID\": \"bafy...\", \"Path\": \"/inputs\"}]",
            ));
            return;
        }
    };
    let mut paths = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{p}[{i}]");
        let Some(mut o) = Obj::new(&at, item, errors) else {
            continue;
        };
        let name = o
            .get("Name")
            .and_then(|(np, nv)| string(&np, nv, errors).map(str::to_owned))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("input{i}"));
        let mut ok = true;
        match o.get("StorageSource") {
            Some((sp, sv)) => {
                if string(&sp, sv, errors).is_some_and(|s| !s.eq_ignore_ascii_case("ipfs")) {
                    errors.push(problem(
                        &sp,
                        format!("{sv} inputs are not supported here"),
                        "use \"IPFS\" with a \"CID\": inputs are fetched by CID from the provider's trustless gateways",
                    ));
                }
            }
            None => {
                ok = false;
                errors.push(problem(
                    &o.at("StorageSource"),
                    "missing",
                    "add \"StorageSource\": \"IPFS\"",
                ));
            }
        }
        let cid = match o.get("CID") {
            Some((cp, cv)) => string(&cp, cv, errors).and_then(|c| {
                let parsed = crate::parse_cid(c);
                if parsed.is_none() {
                    errors.push(problem(
                        &cp,
                        format!("{c:?} is not a CID"),
                        "write the content's CID, e.g. bafybei... or Qm...",
                    ));
                }
                parsed
            }),
            None => {
                errors.push(problem(
                    &o.at("CID"),
                    "missing",
                    "add \"CID\": \"bafybei...\"",
                ));
                None
            }
        };
        let path = match o.get("Path") {
            Some((pp, pv)) => string(&pp, pv, errors).and_then(|path| {
                let path = path.trim_end_matches('/');
                let problem_text = if path == crate::INPUTS_DIR {
                    None
                } else {
                    crate::parse::mount_path_problem(path)
                };
                if let Some(why) = problem_text {
                    errors.push(problem(
                        &pp,
                        format!("{pv} {why}"),
                        "mount it at /inputs or another absolute path outside /outputs",
                    ));
                    None
                } else if !paths.insert(path.to_owned()) {
                    errors.push(problem(
                        &pp,
                        format!("{pv} is used by another input"),
                        "give each input its own Path",
                    ));
                    None
                } else {
                    Some(path.to_owned())
                }
            }),
            None => {
                errors.push(problem(
                    &o.at("Path"),
                    "missing",
                    "add \"Path\": \"/inputs\"",
                ));
                None
            }
        };
        o.finish(&["Name", "StorageSource", "CID", "Path"], errors);
        if let (true, Some(cid), Some(path)) = (ok, cid, path) {
            out.insert(
                name,
                crate::InputSpec {
                    kind: crate::InputType::Cid,
                    required: false,
                    default: Some(format!("{}{cid}", crate::IPFS_SCHEME)),
                    max_bytes: crate::InputType::Cid.default_max_bytes(),
                    description: format!("{at}: IPFS {cid}"),
                    choices: None,
                    min: None,
                    max: None,
                    path: Some(path),
                },
            );
        }
    }
}

fn must_be_empty(path: &str, v: &Json, what: &str, errors: &mut Vec<FieldProblem>) {
    let empty = match v {
        Json::Object(m) => m.values().all(|v| match v {
            Json::Object(inner) => inner.is_empty(),
            Json::Null => true,
            Json::String(s) => s.is_empty(),
            _ => false,
        }),
        Json::Array(a) => a.is_empty(),
        Json::String(s) => s.is_empty(),
        Json::Null => true,
        _ => false,
    };
    if !empty {
        errors.push(problem(
            path,
            format!("{what} is not supported here"),
            "remove it",
        ));
    }
}

const MIB: u64 = 1 << 20;

fn image(path: &str, text: &str, errors: &mut Vec<FieldProblem>) -> Option<ImageRef> {
    let (name, digest) = match text.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (text, None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    let digest_ok = digest.is_none_or(|d| {
        d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
    });
    if !name_ok || !digest_ok {
        errors.push(problem(
            path,
            format!("{text:?} is not an image reference"),
            "write repository/name:tag, optionally @sha256:<64 hex>",
        ));
        return None;
    }
    let tagged = name.rsplit('/').next().is_some_and(|l| l.contains(':'));
    if !tagged && digest.is_none() {
        errors.push(problem(
            path,
            format!("{text:?} has neither a tag nor a digest"),
            "pin it: name:tag or name@sha256:...",
        ));
        return None;
    }
    Some(ImageRef {
        name: name.to_owned(),
        digest: digest.map(str::to_owned),
    })
}

/// Maps a rendered module to what the executor runs, refusing what it cannot honour.
pub fn to_module(
    module: &GitModuleRef,
    json: &Json,
    policy: LilypadPolicy,
) -> Result<Module, LilypadError> {
    let mut errors = Vec::new();
    let built = read_module(module, json, policy, &mut errors);
    match built {
        Some(m) if errors.is_empty() => Ok(m),
        _ => Err(LilypadError::Fields {
            module: module.to_string(),
            errors,
        }),
    }
}

#[derive(Default)]
struct Machine {
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
    gpus: u64,
}

fn read_machine(top: &mut Obj<'_>, errors: &mut Vec<FieldProblem>) -> Machine {
    let mut m = Machine::default();
    let Some((path, v)) = top.get("machine") else {
        errors.push(problem(
            "machine",
            "missing",
            "add \"machine\": {\"cpu\": 1000, \"ram\": 100, \"gpu\": 0} (cpu in millicores, ram in MiB)",
        ));
        return m;
    };
    let Some(mut obj) = Obj::new(&path, v, errors) else {
        return m;
    };
    match obj.get("cpu") {
        Some((p, v)) => {
            if let Some(n) = whole(&p, v, errors) {
                if (10..=1_024_000).contains(&n) {
                    m.cpu_millis = Some(n);
                } else {
                    errors.push(problem(
                        &p,
                        format!("{n} millicores is outside 10 to 1024000"),
                        "ask for 10 (a hundredth of a core) or more",
                    ));
                }
            }
        }
        None => errors.push(problem(
            &obj.at("cpu"),
            "missing",
            "add \"cpu\": 1000 (millicores)",
        )),
    }
    match obj.get("ram") {
        Some((p, v)) => {
            if let Some(n) = whole(&p, v, errors) {
                if n >= 8 {
                    m.memory_bytes = Some(n.saturating_mul(MIB));
                } else {
                    errors.push(problem(
                        &p,
                        format!("{n} MiB is less than the 8 MiB a container needs"),
                        "ask for at least 8",
                    ));
                }
            }
        }
        None => errors.push(problem(&obj.at("ram"), "missing", "add \"ram\": 100 (MiB)")),
    }
    if let Some((p, v)) = obj.get("gpu") {
        m.gpus = whole(&p, v, errors).unwrap_or(0);
    }
    if let Some((p, v)) = obj.get("disk")
        && whole(&p, v, errors).is_some_and(|n| n > 0)
    {
        errors.push(problem(
            &p,
            "this provider does not reserve disk space for a job",
            "remove machine.disk (jobs write /outputs on the provider's disk)",
        ));
    }
    obj.finish(&["cpu", "ram", "gpu", "disk"], errors);
    m
}

fn read_gpus(top: &mut Obj<'_>, gpus: u64, errors: &mut Vec<FieldProblem>) -> u64 {
    let Some((path, v)) = top.get("gpus") else {
        return 0;
    };
    let Json::Array(items) = v else {
        errors.push(problem(
            &path,
            "must be an array of {\"vram\": MiB}",
            "write [{\"vram\": 8192}]",
        ));
        return 0;
    };
    if gpus == 0 && !items.is_empty() {
        errors.push(problem(
            &path,
            "lists GPUs but machine.gpu is 0",
            "set machine.gpu, or remove gpus",
        ));
    }
    let mut least: Option<u64> = None;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(mut obj) = Obj::new(&p, item, errors) else {
            continue;
        };
        if let Some((vp, vv)) = obj.get("vram")
            && let Some(n) = whole(&vp, vv, errors)
        {
            least = Some(least.map_or(n, |l| l.min(n)));
        }
        obj.finish(&["vram"], errors);
    }
    least.unwrap_or(0).saturating_mul(MIB)
}

fn read_module(
    reference: &GitModuleRef,
    json: &Json,
    policy: LilypadPolicy,
    errors: &mut Vec<FieldProblem>,
) -> Option<Module> {
    let Some(mut top) = Obj::new("", json, errors) else {
        errors.push(problem(
            "(top)",
            "the module is null",
            "write a JSON object",
        ));
        return None;
    };
    let machine = read_machine(&mut top, errors);
    let vram_bytes = read_gpus(&mut top, machine.gpus, errors);
    // Lilypad's list of input files a module expects: informational only (see docs/modules.md).
    let _ = top.get("inputFiles");
    let Some((job_path, job)) = top.get("job") else {
        errors.push(problem(
            "job",
            "missing",
            "add \"job\": {\"APIVersion\": \"V1beta1\", \"Spec\": {...}}",
        ));
        return None;
    };
    top.finish(&["machine", "gpus", "inputFiles", "job"], errors);
    let mut job = Obj::new(&job_path, job, errors)?;
    match job.get("APIVersion") {
        Some((p, v)) => {
            if string(&p, v, errors).is_some_and(|s| s != "V1beta1") {
                errors.push(problem(
                    &p,
                    format!("{v} is not supported"),
                    "use Bacalhau's \"V1beta1\" job spec",
                ));
            }
        }
        None => errors.push(problem(
            &job.at("APIVersion"),
            "missing",
            "add \"APIVersion\": \"V1beta1\"",
        )),
    }
    // Bacalhau's bookkeeping (creation time, requester): says nothing about how the job runs.
    let _ = job.get("Metadata");
    let spec = job.get("Spec");
    let spec_at = job.at("Spec");
    job.finish(&["APIVersion", "Metadata", "Spec"], errors);
    let Some((spec_path, spec)) = spec else {
        errors.push(problem(&spec_at, "missing", "add the job's Spec"));
        return None;
    };
    let mut spec = Obj::new(&spec_path, spec, errors)?;

    if let Some((p, v)) = spec.get("Engine")
        && string(&p, v, errors).is_some_and(|s| s != "Docker")
    {
        errors.push(problem(
            &p,
            format!("engine {v} is not supported"),
            "only \"Docker\" jobs run here",
        ));
    }
    if let Some((p, v)) = spec.get("Verifier")
        && string(&p, v, errors).is_some_and(|s| !s.is_empty() && s != "Noop")
    {
        errors.push(problem(
            &p,
            format!("verifier {v} is not supported"),
            "use \"Noop\": results are checked here by challenge and mediation",
        ));
    }
    let publisher_ok = |s: &str| {
        s.is_empty() || s.eq_ignore_ascii_case("ipfs") || s.eq_ignore_ascii_case("estuary")
    };
    let publisher_fix =
        "use \"IPFS\": results are always published as an IPFS CID served by the provider";
    if let Some((p, v)) = spec.get("Publisher")
        && string(&p, v, errors).is_some_and(|s| !publisher_ok(s))
    {
        errors.push(problem(
            &p,
            format!("publisher {v} is not supported"),
            publisher_fix,
        ));
    }
    if let Some((p, v)) = spec.get("PublisherSpec")
        && let Some(mut ps) = Obj::new(&p, v, errors)
    {
        if let Some((tp, tv)) = ps.get("Type")
            && string(&tp, tv, errors).is_some_and(|s| !publisher_ok(s))
        {
            errors.push(problem(
                &tp,
                format!("publisher {tv} is not supported"),
                publisher_fix,
            ));
        }
        if let Some((pp, pv)) = ps.get("Params") {
            must_be_empty(&pp, pv, "publisher parameters", errors);
        }
        ps.finish(&["Type", "Params"], errors);
    }
    if let Some((p, v)) = spec.get("Deal")
        && let Some(mut deal) = Obj::new(&p, v, errors)
    {
        if let Some((cp, cv)) = deal.get("Concurrency")
            && whole(&cp, cv, errors).is_some_and(|n| n > 1)
        {
            errors.push(problem(
                &cp,
                format!("{cv} copies at once are not run here"),
                "use 1: a result is checked by challenge and mediation instead",
            ));
        }
        deal.finish(&["Concurrency"], errors);
    }
    for (key, what) in [("Language", "a Language job"), ("Wasm", "a Wasm job")] {
        if let Some((p, v)) = spec.get(key) {
            must_be_empty(&p, v, what, errors);
        }
    }

    let mut image_ref = None;
    let mut entrypoint = Vec::new();
    let mut args = Vec::new();
    let mut env = BTreeMap::new();
    let mut workdir = None;
    match spec.get("Docker") {
        None => errors.push(problem(
            &spec.at("Docker"),
            "missing",
            "add \"Docker\": {\"Image\": \"name:tag\", ...}",
        )),
        Some((p, v)) => {
            if let Some(mut d) = Obj::new(&p, v, errors) {
                match d.get("Image") {
                    Some((ip, iv)) => {
                        image_ref = string(&ip, iv, errors).and_then(|s| image(&ip, s, errors));
                    }
                    None => errors.push(problem(
                        &d.at("Image"),
                        "missing",
                        "add \"Image\": \"name:tag\"",
                    )),
                }
                if let Some((ep, ev)) = d.get("Entrypoint") {
                    entrypoint = strings(&ep, ev, errors).unwrap_or_default();
                }
                if let Some((ap, av)) = d.get("Parameters") {
                    args = strings(&ap, av, errors)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| crate::module::Arg::One(Template::literal(a)))
                        .collect();
                }
                if let Some((vp, vv)) = d.get("EnvironmentVariables") {
                    for (i, entry) in strings(&vp, vv, errors)
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                    {
                        let at = format!("{vp}[{i}]");
                        match entry.split_once('=') {
                            Some((k, val)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                                if env
                                    .insert(k.to_owned(), Template::literal(val.to_owned()))
                                    .is_some()
                                {
                                    errors.push(problem(
                                        &at,
                                        format!("{k} is set twice"),
                                        "set each variable once",
                                    ));
                                }
                            }
                            _ => errors.push(problem(
                                &at,
                                format!("{entry:?} is not NAME=VALUE"),
                                "write \"NAME=value\"",
                            )),
                        }
                    }
                }
                if let Some((wp, wv)) = d.get("WorkingDirectory")
                    && let Some(w) = string(&wp, wv, errors)
                    && !w.is_empty()
                {
                    if w.starts_with('/') {
                        workdir = Some(w.to_owned());
                    } else {
                        errors.push(problem(
                            &wp,
                            format!("{w:?} is not an absolute path"),
                            "start it with /",
                        ));
                    }
                }
                d.finish(
                    &[
                        "Image",
                        "Entrypoint",
                        "Parameters",
                        "EnvironmentVariables",
                        "WorkingDirectory",
                    ],
                    errors,
                );
            }
        }
    }

    let mut network = Network::None;
    if let Some((p, v)) = spec.get("Network")
        && let Some(mut n) = Obj::new(&p, v, errors)
    {
        if let Some((tp, tv)) = n.get("Type")
            && let Some(t) = string(&tp, tv, errors)
        {
            if t.is_empty() || t.eq_ignore_ascii_case("none") {
            } else if t.eq_ignore_ascii_case("full") {
                if policy.allow_network {
                    network = Network::Bridge;
                } else {
                    errors.push(problem(&tp, "Full network access is forbidden by this provider's policy", "use \"None\" and bake what the job needs into its image, or use a provider that allows networking"));
                }
            } else if t.eq_ignore_ascii_case("http") {
                errors.push(problem(
                    &tp,
                    "HTTP access limited to listed domains cannot be enforced here",
                    "use \"None\" and bake what the job needs into its image",
                ));
            } else {
                errors.push(problem(
                    &tp,
                    format!("network type {t:?} is not known"),
                    "use \"None\"",
                ));
            }
        }
        if let Some((dp, dv)) = n.get("Domains") {
            must_be_empty(&dp, dv, "a domain list", errors);
        }
        n.finish(&["Type", "Domains"], errors);
    }

    if let Some((p, v)) = spec.get("Resources")
        && let Some(mut r) = Obj::new(&p, v, errors)
    {
        for key in ["CPU", "Memory", "Disk"] {
            if let Some((rp, rv)) = r.get(key)
                && string(&rp, rv, errors).is_some_and(|s| !s.is_empty())
            {
                errors.push(problem(
                    &rp,
                    "resources are read from machine here",
                    "leave it \"\" and set machine.cpu and machine.ram",
                ));
            }
        }
        if let Some((gp, gv)) = r.get("GPU")
            && let Some(g) = string(&gp, gv, errors)
            && !g.is_empty()
            && g.parse::<u64>().ok() != Some(machine.gpus)
        {
            errors.push(problem(
                &gp,
                format!("{g:?} GPUs does not match machine.gpu = {}", machine.gpus),
                "make them equal",
            ));
        }
        r.finish(&["CPU", "Memory", "Disk", "GPU"], errors);
    }

    let mut timeout = None;
    match spec.get("Timeout") {
        Some((p, v)) => match v.as_f64() {
            Some(s) if (1.0..=86_400.0).contains(&s) => timeout = Some(Duration::from_secs_f64(s)),
            _ => errors.push(problem(
                &p,
                format!("{v} is not a timeout from 1 to 86400 seconds"),
                "write the seconds, e.g. 1800",
            )),
        },
        None => errors.push(problem(
            &spec.at("Timeout"),
            "missing",
            "add \"Timeout\": 1800 (seconds)",
        )),
    }

    let mut cid_inputs = BTreeMap::new();
    if let Some((p, v)) = spec.get("inputs") {
        read_storage_inputs(&p, v, &mut cid_inputs, errors);
    }
    if let Some((p, v)) = spec.get("outputs") {
        match v {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{p}[{i}]");
                    let Some(mut o) = Obj::new(&at, item, errors) else {
                        continue;
                    };
                    let _ = o.get("Name");
                    if let Some((sp, sv)) = o.get("StorageSource")
                        && string(&sp, sv, errors).is_some_and(|s| !publisher_ok(s))
                    {
                        errors.push(problem(
                            &sp,
                            format!("{sv} is not supported"),
                            "use \"IPFS\"",
                        ));
                    }
                    match o.get("Path") {
                        Some((pp, pv)) => {
                            if string(&pp, pv, errors)
                                .is_some_and(|s| s.trim_end_matches('/') != OUTPUTS_DIR)
                            {
                                errors.push(problem(
                                    &pp,
                                    format!("only {OUTPUTS_DIR} is collected, not {pv}"),
                                    format!("write the outputs to {OUTPUTS_DIR}"),
                                ));
                            }
                        }
                        None => errors.push(problem(
                            &o.at("Path"),
                            "missing",
                            format!("add \"Path\": \"{OUTPUTS_DIR}\""),
                        )),
                    }
                    o.finish(&["Name", "StorageSource", "Path"], errors);
                }
            }
            other => errors.push(problem(
                &p,
                format!("must be an array, not {}", kind(other)),
                "write [{\"Name\": \"outputs\", \"Path\": \"/outputs\"}]",
            )),
        }
    }
    spec.finish(
        &[
            "Engine",
            "Verifier",
            "Publisher",
            "PublisherSpec",
            "Deal",
            "Language",
            "Wasm",
            "Docker",
            "Network",
            "Resources",
            "Timeout",
            "inputs",
            "outputs",
        ],
        errors,
    );

    let gpus = u32::try_from(machine.gpus).unwrap_or(u32::MAX);
    Some(Module {
        reference: ModuleRef::new(reference.module(), reference.version()),
        source: PathBuf::from(reference.to_string()),
        description: format!("Lilypad module {reference}"),
        image: image_ref?,
        entrypoint,
        args,
        env,
        inputs: cid_inputs,
        resources: Resources {
            cpu_millis: machine.cpu_millis?,
            memory_bytes: machine.memory_bytes?,
            gpus,
            vram_bytes: if gpus > 0 { vram_bytes } else { 0 },
        },
        timeout: timeout?,
        network,
        deterministic: false,
        output: InlineOutput::Stdout,
        workdir,
        format: ModuleFormat::Lilypad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inputs_are_json_encoded_before_substitution() {
        let out = render(
            "m",
            r#"[{{.Message}}]"#,
            &inputs(&[("Message", "say \"hi\"\n")]),
        )
        .unwrap();
        assert_eq!(out, r#"["say \"hi\"\n"]"#);
    }

    #[test]
    fn a_missing_input_renders_empty_so_if_takes_its_else() {
        let t = r#"{{if .Message}}{{.Message}}{{else}}"moo"{{end}}"#;
        assert_eq!(render("m", t, &inputs(&[])).unwrap(), r#""moo""#);
    }

    #[test]
    fn subst_decodes_its_inputs_and_escapes_for_a_json_string() {
        let t = r#""{{ subst "MSG=%s and %s%%" .A .B }}""#;
        let out = render("m", t, &inputs(&[("A", "x\"y"), ("B", "z")])).unwrap();
        assert_eq!(out, r#""MSG=x\"y and z%""#);
        let v: String = serde_json::from_str(&out).unwrap();
        assert_eq!(v, "MSG=x\"y and z%");
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let t = r#"{"a": 1, "b": {"c": 1, "c": 2}}"#;
        let e = parse_json("m", t, t, &inputs(&[])).unwrap_err().to_string();
        assert!(e.contains("key \"c\" is given twice at line 1"), "{e}");
        assert!(
            parse_json(
                "m",
                r#"{"a": [1, {"b": null}], "c": 1.5}"#,
                "",
                &inputs(&[])
            )
            .is_ok()
        );
        let e = parse_json("m", "{} x", "", &inputs(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn js_escapes_as_go_does() {
        let out = render("m", r#"{{ js .A }}"#, &inputs(&[("A", "<a='b'>")])).unwrap();
        assert_eq!(out, r#"\"\u003Ca\u003D\'b\'\u003E\""#);
    }

    #[test]
    fn input_names_are_found_outside_string_literals() {
        let t = r#"{{ if .A }}{{ subst "x.Y=%s" .B }}{{ end }}{{.C.D}} {{ printf "%s" (.E) }}"#;
        let names: Vec<String> = referenced_inputs(t).into_iter().collect();
        assert_eq!(names, ["A", "B", "C", "E"]);
    }
}
