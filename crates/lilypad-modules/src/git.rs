//! Lilypad's own module format from git: naming a module (repository, commit or tag, path),
//! binding a tag to its commit, and fetching a template at a commit into a local cache.
//!
//! A module named from git is bound to a commit: the request carries the repository URL as the
//! module and `<commit>` (or `<commit>:<path>` when the path is not the default) as the version,
//! so what runs is fixed by the request, whatever happens to tags later. The git CLI does the
//! fetching; each repository is mirrored once (`<cache>/<name>.git`, a bare repository) and a
//! commit already in the mirror is read without asking the remote again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The template file a Lilypad module repository holds when no path is named.
pub const DEFAULT_TEMPLATE_PATH: &str = "lilypad_module.json.tmpl";

/// Where Lilypad's `name:tag` shortcut looks for its own modules unless configured otherwise:
/// `name:tag` is `<base>/lilypad-module-<name>` at `tag`.
pub const DEFAULT_SHORTCUT_BASE: &str = "https://github.com/Lilypad-Tech";

/// Why a git module cannot be named, fetched or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The text does not name a git module in any accepted form.
    #[error("{text:?} is not a git module: {problem} (fix: {fix})")]
    BadName {
        /// What was given.
        text: String,
        /// What is wrong with it.
        problem: String,
        /// How to write it.
        fix: String,
    },
    /// The git command failed (the repository cannot be reached, or is not a repository).
    #[error(
        "git {action} for {url} failed: {detail} (fix: check the URL and that this machine can reach it)"
    )]
    Git {
        /// The repository.
        url: String,
        /// What was being done (`fetch`, `init`).
        action: String,
        /// git's own message, or why git could not be started.
        detail: String,
    },
    /// No tag (or commit) by that name.
    #[error(
        "{url} has no tag or commit {rev:?} (fix: name one of its tags ({}) or a commit hash)",
        list(tags)
    )]
    NoSuchRevision {
        /// The repository.
        url: String,
        /// The revision asked for.
        rev: String,
        /// The tags it has.
        tags: Vec<String>,
    },
    /// A short hash that names several commits.
    #[error(
        "{rev:?} names more than one commit in {url} (fix: give more hex digits, or the full 40)"
    )]
    Ambiguous {
        /// The repository.
        url: String,
        /// The prefix given.
        rev: String,
    },
    /// The bound commit is not in the repository (any more).
    #[error(
        "commit {commit} does not exist in {url} (fix: name a commit the repository has, or one of its tags, and request the job again)"
    )]
    NoSuchCommit {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
    },
    /// The commit has no such file.
    #[error(
        "{url} has no file {path:?} at commit {commit} (fix: name the template's path after the revision, e.g. @{commit}:path/to/{DEFAULT_TEMPLATE_PATH})"
    )]
    NoSuchFile {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
        /// The path asked for.
        path: String,
    },
}

/// git's message on one line.
fn one_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "it has none".to_owned()
    } else {
        items.join(", ")
    }
}

/// A git module as a user names it: a repository, a revision (a tag or a commit, full or
/// abbreviated) and the template's path in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GitSource {
    /// The repository URL, as git takes it (`https://...`, `file:///...`, `ssh://...`).
    pub url: String,
    /// A tag or a commit hash.
    pub rev: String,
    /// The template's path in the repository.
    pub path: String,
}

fn is_hex_commit(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Schemes a module's repository may be fetched with.
const SCHEMES: [&str; 5] = ["https://", "http://", "ssh://", "git://", "file://"];

/// Whether `url` is one git may be asked to fetch: a known scheme, no `.` or `..` path
/// segments (so a served prefix cannot be escaped), no whitespace, control characters, query
/// or fragment.
fn valid_url(url: &str) -> bool {
    let Some(rest) = SCHEMES.iter().find_map(|s| url.strip_prefix(s)) else {
        return false;
    };
    !rest.is_empty()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#' || c == '\\')
        && rest.split('/').all(|seg| seg != ".." && seg != ".")
}

fn bad_url(text: &str) -> GitError {
    GitError::BadName {
        text: text.to_owned(),
        problem: format!(
            "the repository URL must start with {} and have no . or .. segments, spaces, ? or #",
            SCHEMES.join(", ")
        ),
        fix: "write the repository's URL as git clones it, e.g. https://github.com/Lilypad-Tech/lilypad-module-cowsay".to_owned(),
    }
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !path.contains(['\0', '\n'])
}

impl GitSource {
    /// Reads a git module name, or `None` when `text` names a module of this project's own format
    /// (a plain `name`, with no `:`, `/` or `@`). Three forms are accepted:
    ///
    /// - `<url>@<rev>[:<path>]`, where `<url>` has a scheme (`https://`, `file://`, `ssh://`):
    ///   `file:///srv/cowsay.git@v0.0.4`, `https://host/o/r@1a2b3c:sub/lilypad_module.json.tmpl`;
    /// - `<host>/<owner>/<repo>:<rev>`, as Lilypad's own CLI takes it
    ///   (`github.com/Lilypad-Tech/lilypad-module-cowsay:v0.0.4`, fetched over `https://`);
    /// - `<name>:<rev>`, Lilypad's shortcut for its own modules: `<shortcut_base>/lilypad-module-<name>`.
    ///
    /// The path defaults to [`DEFAULT_TEMPLATE_PATH`].
    pub fn parse(text: &str, shortcut_base: &str) -> Result<Option<Self>, GitError> {
        let bad = |problem: &str| GitError::BadName {
            text: text.to_owned(),
            problem: problem.to_owned(),
            fix: "write <url>@<tag or commit>[:<path>] (e.g. file:///srv/cowsay.git@v1.0.0), \
                  <host>/<owner>/<repo>:<tag or commit>, or <name>:<tag> for Lilypad's own modules"
                .to_owned(),
        };
        if !text.contains([':', '/', '@']) {
            return Ok(None);
        }
        let (url, rest) = if text.contains("://") {
            let Some((url, rest)) = text.rsplit_once('@') else {
                return Err(bad("a URL needs @<tag or commit> after it"));
            };
            if url.ends_with("://") || !url.contains("://") {
                return Err(bad("the URL before @ is empty or has no scheme"));
            }
            (url.to_owned(), rest)
        } else if let Some((repo, rev)) = text.split_once(':') {
            let url = if repo.contains('/') {
                if repo.split('/').count() < 3 || repo.split('/').any(str::is_empty) {
                    return Err(bad(
                        "a repository without a scheme is <host>/<owner>/<repo>",
                    ));
                }
                format!("https://{repo}")
            } else {
                if repo.is_empty()
                    || !repo
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(bad("a shortcut's name is letters, digits, -, _ and ."));
                }
                format!(
                    "{}/lilypad-module-{repo}",
                    shortcut_base.trim_end_matches('/')
                )
            };
            (url, rev)
        } else {
            return Err(bad(
                "no revision: a git module is always named at a tag or commit",
            ));
        };
        if !valid_url(&url) {
            return Err(bad_url(text));
        }
        let (rev, path) = match rest.split_once(':') {
            Some((rev, path)) => (rev, path),
            None => (rest, DEFAULT_TEMPLATE_PATH),
        };
        if rev.is_empty()
            || rev.starts_with('-')
            || !rev
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"~^?*[\\".contains(&b))
        {
            return Err(bad("the revision must be a tag or a commit hash"));
        }
        if !valid_path(path) {
            return Err(bad(
                "the path must be relative to the repository's root, without . or .. parts",
            ));
        }
        Ok(Some(Self {
            url,
            rev: rev.to_owned(),
            path: path.to_owned(),
        }))
    }
}

impl fmt::Display for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.url, self.rev)?;
        if self.path != DEFAULT_TEMPLATE_PATH {
            write!(f, ":{}", self.path)?;
        }
        Ok(())
    }
}

/// A git module bound to one commit: what a job request names and a provider runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GitModuleRef {
    /// The repository URL.
    pub url: String,
    /// The full commit hash (40 lowercase hex digits).
    pub commit: String,
    /// The template's path in the repository.
    pub path: String,
}

impl GitModuleRef {
    /// Whether a request's module name is a git repository (rather than one of this project's
    /// own module names, which never hold `:` or `/`).
    pub fn is_git(module: &str) -> bool {
        module.contains("://")
    }

    /// The bound module a request names as `module` (the URL) and `version` (`<commit>` or
    /// `<commit>:<path>`); `None` when `module` is not a git repository.
    pub fn from_request(module: &str, version: &str) -> Option<Result<Self, GitError>> {
        if !Self::is_git(module) {
            return None;
        }
        if !valid_url(module) {
            return Some(Err(bad_url(module)));
        }
        let (commit, path) = version
            .split_once(':')
            .unwrap_or((version, DEFAULT_TEMPLATE_PATH));
        if !is_hex_commit(commit) || !valid_path(path) {
            return Some(Err(GitError::BadName {
                text: format!("{module} {version}"),
                problem: "a git module's version must be its full commit hash, then :<path> when the path is not the default".to_owned(),
                fix: format!("request it as version <40 hex digits>[:<path>]; `lilypad run {module}@<tag>` binds a tag to its commit"),
            }));
        }
        Some(Ok(Self {
            url: module.to_owned(),
            commit: commit.to_owned(),
            path: path.to_owned(),
        }))
    }

    /// The module name a request carries: the URL.
    pub fn module(&self) -> &str {
        &self.url
    }

    /// The version a request carries: the commit, then `:<path>` unless the path is the default.
    pub fn version(&self) -> String {
        if self.path == DEFAULT_TEMPLATE_PATH {
            self.commit.clone()
        } else {
            format!("{}:{}", self.commit, self.path)
        }
    }
}

impl fmt::Display for GitModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.url, self.version())
    }
}

/// Local mirrors of module repositories, one bare repository per URL under `dir`.
#[derive(Debug, Clone)]
pub struct GitCache {
    dir: PathBuf,
}

/// A directory name for a URL: readable, and unique by a hash of the whole URL.
fn mirror_name(url: &str) -> String {
    // FNV-1a, 64 bits: only to tell URLs apart in directory names, not for security.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let tail: String = url
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{tail}-{hash:016x}.git")
}

impl GitCache {
    /// Mirrors kept under `dir` (created when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the mirrors are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn mirror(&self, url: &str) -> PathBuf {
        self.dir.join(mirror_name(url))
    }

    fn git(&self, url: &str, repo: &Path, action: &str, args: &[&str]) -> Result<String, GitError> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            // A remote that stalls (under 1 KiB/s for 30 s) fails the fetch instead of holding it.
            .args([
                "-c",
                "http.lowSpeedLimit=1024",
                "-c",
                "http.lowSpeedTime=30",
            ])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .output()
            .map_err(|e| GitError::Git {
                url: url.to_owned(),
                action: action.to_owned(),
                detail: format!("cannot run git: {e} (is git installed?)"),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError::Git {
                url: url.to_owned(),
                action: action.to_owned(),
                detail: one_line(&out.stderr),
            })
        }
    }

    /// Brings the mirror of `url` up to date with the remote's branches and tags (a moved tag
    /// moves in the mirror too), creating it first if needed. One fetch at a time per mirror.
    fn fetch(&self, url: &str) -> Result<PathBuf, GitError> {
        let repo = self.mirror(url);
        let err = |action: &str, e: std::io::Error| GitError::Git {
            url: url.to_owned(),
            action: action.to_owned(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| err("cache directory", e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(repo.with_extension("lock"))
            .map_err(|e| err("lock", e))?;
        lock.lock().map_err(|e| err("lock", e))?;
        if !repo.join("HEAD").exists() {
            let out = Command::new("git")
                .args(["init", "--quiet", "--bare"])
                .arg(&repo)
                .output()
                .map_err(|e| err("init", e))?;
            if !out.status.success() {
                return Err(GitError::Git {
                    url: url.to_owned(),
                    action: "init".to_owned(),
                    detail: one_line(&out.stderr),
                });
            }
        }
        self.git(
            url,
            &repo,
            "fetch",
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                "--no-write-fetch-head",
                "--",
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )?;
        Ok(repo)
    }

    fn has_commit(&self, url: &str, repo: &Path, commit: &str) -> bool {
        repo.join("HEAD").exists()
            && self
                .git(
                    url,
                    repo,
                    "cat-file",
                    &["cat-file", "-e", &format!("{commit}^{{commit}}")],
                )
                .is_ok()
    }

    /// Binds `source` to a commit: its tag as the remote has it now, or the commit a (possibly
    /// abbreviated) hash names. The remote is always asked, so a moved tag is seen.
    pub fn bind(&self, source: &GitSource) -> Result<GitModuleRef, GitError> {
        let repo = self.fetch(&source.url)?;
        let url = &source.url;
        let rev_parse = |name: &str| {
            self.git(
                url,
                &repo,
                "rev-parse",
                &["rev-parse", "--verify", "--quiet", "--end-of-options", name],
            )
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| is_hex_commit(s))
        };
        let tagged = rev_parse(&format!("refs/tags/{}^{{commit}}", source.rev));
        let commit = match tagged {
            Some(c) => c,
            None if source.rev.len() >= 4 && source.rev.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let rev = source.rev.to_ascii_lowercase();
                let all = self.git(url, &repo, "rev-list", &["rev-list", "--all"])?;
                let matches: Vec<&str> = all.lines().filter(|c| c.starts_with(&rev)).collect();
                match matches.as_slice() {
                    [one] => (*one).to_owned(),
                    [] => return Err(self.no_such_revision(source, &repo)),
                    _ => {
                        return Err(GitError::Ambiguous {
                            url: url.clone(),
                            rev: source.rev.clone(),
                        });
                    }
                }
            }
            None => return Err(self.no_such_revision(source, &repo)),
        };
        let bound = GitModuleRef {
            url: url.clone(),
            commit,
            path: source.path.clone(),
        };
        self.read_in(&repo, &bound)?;
        Ok(bound)
    }

    fn no_such_revision(&self, source: &GitSource, repo: &Path) -> GitError {
        let tags = self
            .git(&source.url, repo, "tag", &["tag", "--list"])
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        GitError::NoSuchRevision {
            url: source.url.clone(),
            rev: source.rev.clone(),
            tags,
        }
    }

    /// The template a bound module names: read from the mirror when it holds the commit, else
    /// after fetching.
    pub fn template(&self, module: &GitModuleRef) -> Result<String, GitError> {
        let repo = self.mirror(&module.url);
        let repo = if self.has_commit(&module.url, &repo, &module.commit) {
            repo
        } else {
            self.fetch(&module.url)?
        };
        self.read_in(&repo, module)
    }

    fn read_in(&self, repo: &Path, module: &GitModuleRef) -> Result<String, GitError> {
        if !self.has_commit(&module.url, repo, &module.commit) {
            return Err(GitError::NoSuchCommit {
                url: module.url.clone(),
                commit: module.commit.clone(),
            });
        }
        self.git(
            &module.url,
            repo,
            "show",
            &["show", &format!("{}:{}", module.commit, module.path)],
        )
        .map_err(|_| GitError::NoSuchFile {
            url: module.url.clone(),
            commit: module.commit.clone(),
            path: module.path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<GitSource> {
        GitSource::parse(text, "file:///srv/lp").unwrap()
    }

    #[test]
    fn plain_names_are_this_projects_own_modules() {
        assert_eq!(parse("cowsay"), None);
    }

    #[test]
    fn a_url_takes_a_revision_after_its_last_at_and_an_optional_path() {
        let s = parse("ssh://git@host/o/r.git@v1.2:sub/m.json.tmpl").unwrap();
        assert_eq!(s.url, "ssh://git@host/o/r.git");
        assert_eq!(s.rev, "v1.2");
        assert_eq!(s.path, "sub/m.json.tmpl");
        let s = parse("file:///srv/r.git@abc123").unwrap();
        assert_eq!(s.path, DEFAULT_TEMPLATE_PATH);
    }

    #[test]
    fn lilypads_own_forms_are_understood() {
        let s = parse("github.com/Lilypad-Tech/lilypad-module-cowsay:v0.0.4").unwrap();
        assert_eq!(
            s.url,
            "https://github.com/Lilypad-Tech/lilypad-module-cowsay"
        );
        assert_eq!(s.rev, "v0.0.4");
        let s = parse("cowsay:v0.0.4").unwrap();
        assert_eq!(s.url, "file:///srv/lp/lilypad-module-cowsay");
    }

    #[test]
    fn a_url_that_could_escape_a_served_prefix_is_refused() {
        for url in [
            "https://github.com/Lilypad-Tech/../evil/repo",
            "file:///srv/lp/./x",
            "ext::sh -c evil",
            "https://host/a b",
            "https://host/a?x=1",
            "ftp://host/a",
        ] {
            let commit = "0123456789abcdef0123456789abcdef01234567";
            if GitModuleRef::is_git(url) {
                let e = GitModuleRef::from_request(url, commit)
                    .unwrap()
                    .unwrap_err();
                assert!(e.to_string().contains("no . or .. segments"), "{url}: {e}");
            }
            let e = GitSource::parse(&format!("{url}@v1"), "x");
            assert!(!matches!(e, Ok(Some(_))), "{url}: {e:?}");
        }
    }

    #[test]
    fn bad_names_say_how_to_write_one() {
        for text in [
            "file:///srv/r.git",
            "file:///srv/r.git@",
            "file:///srv/r.git@v1:../x",
            "file:///srv/r.git@-x",
            "cow say:v1",
        ] {
            let e = GitSource::parse(text, "x").unwrap_err().to_string();
            assert!(
                e.contains("fix: write <url>@<tag or commit>"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_request_carries_the_commit_and_a_path_only_when_not_the_default() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let r = GitModuleRef::from_request("file:///r.git", c)
            .unwrap()
            .unwrap();
        assert_eq!(r.path, DEFAULT_TEMPLATE_PATH);
        assert_eq!(r.version(), c);
        let v = format!("{c}:a/b.tmpl");
        let r = GitModuleRef::from_request("file:///r.git", &v)
            .unwrap()
            .unwrap();
        assert_eq!((r.path.as_str(), r.version()), ("a/b.tmpl", v));
        assert!(GitModuleRef::from_request("cowsay", "1.0.0").is_none());
        let e = GitModuleRef::from_request("file:///r.git", "v1.0")
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("full commit hash"), "{e}");
    }
}
