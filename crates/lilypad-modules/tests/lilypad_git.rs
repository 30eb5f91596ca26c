//! Lilypad modules (`lilypad_module.json.tmpl`) from local bare git repositories: naming and
//! binding (tags to commits), fetching and caching by commit, rendering as Lilypad does, and
//! every way a module can be refused, each with its message.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use lilypad_e2e::BareRepo;
use lilypad_modules::git::{DEFAULT_TEMPLATE_PATH, GitCache, GitSource};
use lilypad_modules::lilypad::{LilypadError, LilypadPolicy};
use lilypad_modules::{GitModules, JobError, ModuleFormat, ModuleRegistry, Network};

/// A cowsay module in Lilypad's format, on the image this project builds locally; `image` and
/// `extra` (more `Spec` fields) vary it between commits.
fn cowsay(image: &str, extra: &str) -> String {
    format!(
        r#"{{
  "machine": {{ "gpu": 0, "cpu": 500, "ram": 32 }},
  "job": {{
    "APIVersion": "V1beta1",
    "Metadata": {{ "CreatedAt": "0001-01-01T00:00:00Z", "Requester": {{}} }},
    "Spec": {{
      "Deal": {{ "Concurrency": 1 }},
      "Docker": {{
        "Entrypoint": ["/usr/bin/cowsay", {{{{if .Message}}}}{{{{.Message}}}}{{{{else}}}}"moo"{{{{end}}}}],
        "EnvironmentVariables": [{{{{ if .Greeting }}}}"{{{{ subst "GREETING=%s" .Greeting }}}}"{{{{ else }}}}"GREETING=hello"{{{{ end }}}}],
        "WorkingDirectory": "/tmp",
        "Image": "{image}"
      }},
      "Engine": "Docker",
      "Network": {{ "Type": "None" }},
      "PublisherSpec": {{ "Type": "IPFS" }},
      "Resources": {{ "GPU": "" }},
      "Timeout": 30,
      "Verifier": "Noop",
      "outputs": [{{ "Name": "outputs", "StorageSource": "IPFS", "path": "/outputs" }}]{extra}
    }}
  }}
}}"#
    )
}

fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn source(repo: &BareRepo, rev: &str) -> GitSource {
    GitSource::parse(&format!("{}@{rev}", repo.url()), "unused")
        .unwrap()
        .unwrap()
}

fn registry(cache: &Path, repo: &BareRepo, policy: LilypadPolicy) -> ModuleRegistry {
    ModuleRegistry::default().with_git(GitModules::new(cache, vec![repo.url()], policy))
}

fn load_error(repo: &BareRepo, template: &str, given: &[(&str, &str)]) -> String {
    let commit = repo.commit(&[(DEFAULT_TEMPLATE_PATH, template)], "module");
    let cache = tempfile::tempdir().unwrap();
    let reg = registry(cache.path(), repo, LilypadPolicy::default());
    reg.module(&repo.url(), &commit, &inputs(given))
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_tag_binds_its_commit_and_moving_the_tag_later_does_not_change_what_runs() {
    let repo = BareRepo::new("cowsay.git");
    let first = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "v1",
    );
    repo.tag("v1", &first);
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path());

    let bound = git.bind(&source(&repo, "v1")).unwrap();
    assert_eq!(bound.commit, first);
    assert_eq!(bound.version(), first, "the default path is not written");

    let second = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:2.0.0", ""))],
        "v2",
    );
    repo.tag("v1", &second);

    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    let module = reg
        .module(bound.module(), &bound.version(), &inputs(&[]))
        .unwrap();
    assert_eq!(
        module.image.name, "lilypad/cowsay:1.0.0",
        "the bound commit still runs"
    );
    let rebound = git.bind(&source(&repo, "v1")).unwrap();
    assert_eq!(rebound.commit, second, "binding again sees the moved tag");
}

#[test]
fn an_abbreviated_hash_binds_the_one_commit_it_names() {
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    repo.commit(&[("README", "more")], "two");
    let cache = tempfile::tempdir().unwrap();
    let bound = GitCache::new(cache.path())
        .bind(&source(&repo, &commit[..10]))
        .unwrap();
    assert_eq!(bound.commit, commit);
}

#[test]
fn a_template_in_a_subdirectory_is_named_after_the_revision() {
    let repo = BareRepo::new("modules.git");
    repo.commit(
        &[("cow/module.json.tmpl", &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    repo.tag("v1", "HEAD");
    let cache = tempfile::tempdir().unwrap();
    let named = GitSource::parse(&format!("{}@v1:cow/module.json.tmpl", repo.url()), "x")
        .unwrap()
        .unwrap();
    let bound = GitCache::new(cache.path()).bind(&named).unwrap();
    assert_eq!(
        bound.version(),
        format!("{}:cow/module.json.tmpl", bound.commit)
    );
    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    assert!(
        reg.module(bound.module(), &bound.version(), &inputs(&[]))
            .is_ok()
    );

    let missing = GitSource::parse(&format!("{}@v1", repo.url()), "x")
        .unwrap()
        .unwrap();
    let err = GitCache::new(cache.path())
        .bind(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no file \"lilypad_module.json.tmpl\" at commit")
            && err.contains("fix: name the template's path after the revision"),
        "{err}"
    );
}

#[test]
fn the_lilypad_shortcut_finds_a_module_repository_under_the_configured_base() {
    let repo = BareRepo::new("lilypad-module-cowsay");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    repo.tag("v0.0.4", &commit);
    let named = GitSource::parse("cowsay:v0.0.4", &repo.base_url())
        .unwrap()
        .unwrap();
    assert_eq!(named.url, repo.url());
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(
        GitCache::new(cache.path()).bind(&named).unwrap().commit,
        commit
    );
}

#[test]
fn a_commit_or_tag_that_does_not_exist_is_refused_naming_what_exists() {
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    repo.tag("v1", &commit);
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path());

    let err = git.bind(&source(&repo, "v9")).unwrap_err().to_string();
    assert!(
        err.contains("has no tag or commit \"v9\"") && err.contains("one of its tags (v1)"),
        "{err}"
    );

    let absent = "0123456789abcdef0123456789abcdef01234567";
    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    let err = reg
        .module(&repo.url(), absent, &inputs(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "commit {absent} does not exist in {} (fix: name a commit the repository has, or one of its tags, and request the job again)",
            repo.url()
        )
    );
}

#[test]
fn a_module_renders_with_its_inputs_json_encoded_and_maps_to_what_the_executor_runs() {
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    let cache = tempfile::tempdir().unwrap();
    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    let given = inputs(&[("Message", "say \"hi\"; $(id)"), ("Greeting", "a\"b")]);
    let module = reg.module(&repo.url(), &commit, &given).unwrap();
    assert_eq!(module.format, ModuleFormat::Lilypad);
    assert_eq!(module.resources.cpu_millis, 500);
    assert_eq!(module.resources.memory_bytes, 32 << 20);
    assert_eq!(module.resources.gpus, 0);
    assert_eq!(module.timeout.as_secs(), 30);
    assert_eq!(module.network, Network::None);
    assert_eq!(module.workdir.as_deref(), Some("/tmp"));
    let job = module.prepare(&given).unwrap();
    assert_eq!(job.entrypoint, ["/usr/bin/cowsay", "say \"hi\"; $(id)"]);
    assert_eq!(job.env, [("GREETING".to_owned(), "a\"b".to_owned())]);

    let defaults = reg.module(&repo.url(), &commit, &inputs(&[])).unwrap();
    let job = defaults.prepare(&inputs(&[])).unwrap();
    assert_eq!(job.entrypoint, ["/usr/bin/cowsay", "moo"]);
    assert_eq!(job.env, [("GREETING".to_owned(), "hello".to_owned())]);
}

#[test]
fn a_template_that_renders_invalid_json_is_refused_with_the_line() {
    let repo = BareRepo::new("bad.git");
    let err = load_error(&repo, &cowsay("lilypad/cowsay:1.0.0", ","), &[]);
    assert!(
        err.contains("the rendered template is not valid JSON: trailing comma at line 21")
            && err.ends_with(
                "(fix: correct the template so that every input, JSON-encoded, renders valid JSON)"
            ),
        "{err}"
    );
}

#[test]
fn a_missing_input_that_breaks_the_json_is_named_with_how_to_give_it() {
    let repo = BareRepo::new("needs-input.git");
    let template = cowsay("lilypad/cowsay:1.0.0", "").replace(
        r#"{{if .Message}}{{.Message}}{{else}}"moo"{{end}}"#,
        "{{.Message}}",
    );
    let err = load_error(&repo, &template, &[]);
    assert!(
        err.contains("not valid JSON") && err.ends_with("(fix: the template needs Message, which the job did not give: add -i Message=VALUE)"),
        "{err}"
    );
}

#[test]
fn an_input_the_template_never_uses_is_refused() {
    let repo = BareRepo::new("cowsay.git");
    let err = load_error(
        &repo,
        &cowsay("lilypad/cowsay:1.0.0", ""),
        &[("Mesage", "hi")],
    );
    assert!(
        err.contains("input Mesage not used by its template (fix: did you mean Message?)"),
        "{err}"
    );
}

#[test]
fn an_unknown_field_is_an_error_naming_its_path() {
    let repo = BareRepo::new("typo.git");
    let template = cowsay("lilypad/cowsay:1.0.0", "").replace("\"Image\"", "\"Imgae\"");
    let err = load_error(&repo, &template, &[]);
    assert!(
        err.contains("job.Spec.Docker.Imgae: unknown field (fix: did you mean Image?)")
            && err.contains("job.Spec.Docker.Image: missing"),
        "{err}"
    );
}

#[test]
fn what_the_executor_cannot_honour_is_refused_with_the_reason() {
    let repo = BareRepo::new("asks-too-much.git");
    let template = cowsay(
        "lilypad/cowsay:1.0.0",
        r#", "inputs": [{ "StorageSource": "IPFS", "CID": "bafy", "path": "/inputs" }]"#,
    )
    .replace(
        r#""Type": "None""#,
        r#""Type": "HTTP", "Domains": ["example.com"]"#,
    )
    .replace(r#""Concurrency": 1"#, r#""Concurrency": 3"#)
    .replace("\"path\": \"/outputs\"", "\"path\": \"/results\"");
    let err = load_error(&repo, &template, &[]);
    for expected in [
        "job.Spec.Network.Type: HTTP access limited to listed domains cannot be enforced here",
        "job.Spec.Network.Domains: a domain list is not supported here",
        "job.Spec.Deal.Concurrency: 3 copies at once are not run here",
        "job.Spec.outputs[0].path: only /outputs is collected",
        "job.Spec.inputs[0].CID: \"bafy\" is not a CID",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
}

#[test]
fn full_networking_runs_only_where_the_provider_allows_it() {
    let repo = BareRepo::new("net.git");
    let template =
        cowsay("lilypad/cowsay:1.0.0", "").replace(r#""Type": "None""#, r#""Type": "Full""#);
    let commit = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &template)], "net");
    let cache = tempfile::tempdir().unwrap();
    let forbidding = registry(cache.path(), &repo, LilypadPolicy::default());
    let err = forbidding
        .module(&repo.url(), &commit, &inputs(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Full network access is forbidden by this provider's policy"),
        "{err}"
    );
    let allowing = registry(
        cache.path(),
        &repo,
        LilypadPolicy {
            allow_network: true,
        },
    );
    let module = allowing.module(&repo.url(), &commit, &inputs(&[])).unwrap();
    assert_eq!(module.network, Network::Bridge);
}

#[test]
fn gpus_and_their_memory_come_from_machine_and_gpus() {
    let repo = BareRepo::new("gpu.git");
    let template = cowsay("lilypad/cowsay:1.0.0", "")
        .replace(r#""gpu": 0"#, r#""gpu": 1"#)
        .replace(
            r#""job": {"#,
            r#""gpus": [{ "vram": 24576 }, { "vram": 8192 }], "job": {"#,
        )
        .replace(r#""GPU": """#, r#""GPU": "1""#);
    let commit = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &template)], "gpu");
    let cache = tempfile::tempdir().unwrap();
    let module = registry(cache.path(), &repo, LilypadPolicy::default())
        .module(&repo.url(), &commit, &inputs(&[]))
        .unwrap()
        .into_owned();
    assert_eq!(module.resources.gpus, 1);
    assert_eq!(
        module.resources.vram_bytes,
        8192 << 20,
        "any listed GPU will do: the smallest"
    );
}

#[test]
fn both_formats_load_side_by_side_and_git_needs_a_served_prefix() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../job-modules");
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    let cache = tempfile::tempdir().unwrap();

    let toml_only = ModuleRegistry::load_dir(&dir).unwrap();
    let err = toml_only
        .module(&repo.url(), &commit, &inputs(&[]))
        .unwrap_err();
    assert!(
        matches!(err, JobError::Lilypad(LilypadError::NotServed { .. })),
        "{err}"
    );

    let both = ModuleRegistry::load_dir(&dir)
        .unwrap()
        .with_git(GitModules::new(
            cache.path(),
            vec![repo.url()],
            LilypadPolicy::default(),
        ));
    let toml = both.module("cowsay", "1.0.0", &inputs(&[])).unwrap();
    assert_eq!(toml.format, ModuleFormat::Toml);
    let job = both
        .prepare("cowsay", "1.0.0", &inputs(&[("message", "hi")]))
        .unwrap();
    assert_eq!(job.argv(), ["/usr/bin/cowsay", "hi"]);
    assert!(both.module(&repo.url(), &commit, &inputs(&[])).is_ok());

    let elsewhere = ModuleRegistry::default().with_git(GitModules::new(
        cache.path(),
        vec!["https://github.com/Lilypad-Tech/".to_owned()],
        LilypadPolicy::default(),
    ));
    let err = elsewhere
        .module(&repo.url(), &commit, &inputs(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not a repository this service runs modules from (it runs https://github.com/Lilypad-Tech/)"),
        "{err}"
    );
}

#[test]
fn a_cached_commit_is_read_without_the_remote() {
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path());
    let bound = git.bind(&source(&repo, &commit)).unwrap();
    let url = repo.url();
    drop(repo);
    let text = git.template(&bound).unwrap();
    assert!(
        text.contains("lilypad/cowsay:1.0.0"),
        "read from {url}'s mirror: {text}"
    );
}

#[test]
fn a_fetch_ahead_of_time_leaves_the_module_to_load_from_memory() {
    let repo = BareRepo::new("cowsay.git");
    let commit = repo.commit(
        &[(DEFAULT_TEMPLATE_PATH, &cowsay("lilypad/cowsay:1.0.0", ""))],
        "one",
    );
    let cache = tempfile::tempdir().unwrap();
    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    assert!(
        reg.git_fetch("cowsay", "1.0.0").is_none(),
        "nothing to fetch for TOML modules"
    );
    let fetch = reg.git_fetch(&repo.url(), &commit).unwrap();
    fetch();
    assert!(
        reg.git_fetch(&repo.url(), &commit).is_none(),
        "fetched once"
    );
    let url = repo.url();
    drop(repo);
    std::fs::remove_dir_all(cache.path()).unwrap();
    assert!(reg.module(&url, &commit, &inputs(&[])).is_ok());
}

#[test]
fn ipfs_storage_inputs_become_cid_mounts_and_other_sources_are_refused() {
    let repo = BareRepo::new("reads-a-cid.git");
    let template = cowsay(
        "lilypad/cowsay:1.0.0",
        r#", "inputs": [{ "Name": "data", "StorageSource": "IPFS", "CID": {{ .Data }}, "Path": "/inputs" }]"#,
    );
    let commit = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &template)], "cid");
    let cache = tempfile::tempdir().unwrap();
    let reg = registry(cache.path(), &repo, LilypadPolicy::default());
    let cid = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";
    let given = inputs(&[("Data", cid)]);
    let job = reg
        .module(&repo.url(), &commit, &given)
        .unwrap()
        .prepare(&given)
        .unwrap();
    assert_eq!(job.cid_inputs.len(), 1);
    assert_eq!(job.cid_inputs[0].cid.to_string(), cid);
    assert_eq!(job.cid_inputs[0].path, "/inputs");

    let url = cowsay(
        "lilypad/cowsay:1.0.0",
        r#", "inputs": [{ "StorageSource": "URLDownload", "URL": "http://x", "Path": "/inputs" }]"#,
    );
    let err = load_error(&repo, &url, &[]);
    assert!(
        err.contains(
            "job.Spec.inputs[0].StorageSource: \"URLDownload\" inputs are not supported here"
        ),
        "{err}"
    );
    assert!(err.contains("job.Spec.inputs[0].CID: missing"), "{err}");
}
