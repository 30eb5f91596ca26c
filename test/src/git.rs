//! Git repositories for tests of modules fetched from git: a bare repository reached by a
//! `file://` URL (no network), written through a work tree beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A bare repository and a work tree that pushes to it; both removed when dropped.
#[derive(Debug)]
pub struct BareRepo {
    dir: tempfile::TempDir,
    name: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Lilypad Test",
            "-c",
            "user.email=test@lilypad.invalid",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e} (is git installed?)"));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl BareRepo {
    /// An empty bare repository named `name` (e.g. `lilypad-module-cowsay`, so that a shortcut
    /// base of [`BareRepo::base_url`] finds it).
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let bare = dir.path().join(name);
        std::fs::create_dir_all(&bare).unwrap_or_else(|e| panic!("{}: {e}", bare.display()));
        git(&bare, &["init", "--quiet", "--bare"]);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("{}: {e}", work.display()));
        git(&work, &["init", "--quiet", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The repository's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// The URL of the directory holding it: a shortcut base under which `name:tag` finds a
    /// repository named `lilypad-module-<name>`.
    pub fn base_url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Writes `files` (path, contents), commits them and pushes; returns the commit's hash.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        let work = self.work();
        for (path, contents) in files {
            let file = work.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
            }
            std::fs::write(&file, contents).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        git(&work, &["add", "--all"]);
        git(
            &work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(&work, &["push", "--quiet", "origin", "main"]);
        git(&work, &["rev-parse", "HEAD"])
    }

    /// Points tag `name` at `commit` (moving it if it exists) and pushes it.
    pub fn tag(&self, name: &str, commit: &str) {
        let work = self.work();
        git(&work, &["tag", "--force", "-a", "-m", name, name, commit]);
        git(
            &work,
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                &format!("refs/tags/{name}"),
            ],
        );
    }
}
