//! Every module whose image this project builds (`lilypad/...`) has that image after
//! `ensure_module_images`, and the build script's images run their programs.

use std::process::Command;

use lilypad_e2e::{docker_run, ensure_module_images, job_modules_dir, test_modules_dir};

/// `image` and `digest` (if any) from each module file (a light read: the modules crate is not a
/// dependency here), with the file.
fn module_images() -> Vec<(String, Option<String>, std::path::PathBuf)> {
    let mut images = Vec::new();
    for dir in [job_modules_dir(), test_modules_dir()] {
        for module in std::fs::read_dir(&dir).expect("modules dir") {
            let module = module.expect("entry").path();
            if !module.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&module).expect("module dir") {
                let file = file.expect("entry").path();
                if file.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&file).expect("module file");
                    let field = |key: &str| {
                        text.lines()
                            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                            .and_then(|rest| rest.split('"').next())
                            .map(str::to_owned)
                    };
                    let image = field("image")
                        .unwrap_or_else(|| panic!("{} has an image line", file.display()));
                    images.push((image, field("digest"), file));
                }
            }
        }
    }
    images.sort();
    images
}

/// The id of the local image `image`.
fn local_id(image: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "{image} is missing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn every_shipped_module_pins_the_image_the_build_makes() {
    ensure_module_images().expect("the module images build");
    let local: Vec<_> = module_images()
        .into_iter()
        .filter(|(image, _, _)| image.starts_with("lilypad/"))
        .collect();
    let mut names: Vec<&str> = local.iter().map(|(image, _, _)| image.as_str()).collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "lilypad/cowsay:1.0.0",
            "lilypad/sha256:1.0.0",
            "lilypad/test-tools:1.0.0"
        ]
    );
    for (image, digest, file) in &local {
        let digest = digest
            .as_deref()
            .unwrap_or_else(|| panic!("{} does not pin a digest for {image}", file.display()));
        assert_eq!(
            digest,
            local_id(image),
            "{} pins another image than the build made",
            file.display()
        );
    }
}

#[test]
fn the_images_run_their_programs_without_network() {
    ensure_module_images().expect("the module images build");
    let out = docker_run("lilypad/sha256:1.0.0", &["sha256-text", "abc"]).expect("docker runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let out = docker_run("lilypad/cowsay:1.0.0", &["cowsay"]).expect("docker runs");
    assert_eq!(
        out.status.code(),
        Some(64),
        "cowsay needs exactly one argument"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: cowsay MESSAGE"));
    let out = docker_run(
        "lilypad/test-tools:1.0.0",
        &["sh", "-c", "ls /sys/class/net"],
    )
    .expect("docker runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lo\n");
}
