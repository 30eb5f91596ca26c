//! `image` and `digest`: the image a job runs, pinned.

use lilypad_toml::Errors;

use crate::module::ImageRef;

pub(super) fn read_image(r: &mut Errors, table: &toml::Table) -> Option<ImageRef> {
    let fix = "write the image with a tag, e.g. image = \"lilypad/cowsay:1.0.0\" (and optionally digest = \"sha256:...\")";
    let name = match table.get("image") {
        None => {
            r.error("image", "missing", fix);
            None
        }
        Some(v) => r.string("image", v, fix).and_then(|s| {
            if s.is_empty()
                || s.contains('@')
                || !s.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c)
                })
            {
                r.error(
                    "image",
                    format!("{s:?} is not an image reference"),
                    "use lowercase repository/name:tag; put a digest in the digest field, not after @",
                );
                None
            } else {
                Some(s.to_owned())
            }
        }),
    };
    let digest = match table.get("digest") {
        None => Some(None),
        Some(v) => {
            let fix = "write the image's content digest as \"sha256:\" and 64 lowercase hex digits";
            r.string("digest", v, fix).and_then(|s| {
                let ok = s.strip_prefix("sha256:").is_some_and(|hex| {
                    hex.len() == 64
                        && hex
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                });
                if ok {
                    Some(Some(s.to_owned()))
                } else {
                    r.error("digest", format!("{s:?} is not a sha256 digest"), fix);
                    None
                }
            })
        }
    };
    let (name, digest) = (name?, digest?);
    let tagged = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if !tagged && digest.is_none() {
        r.error(
            "image",
            format!("{name:?} has neither a tag nor a digest, so it would mean whatever :latest is today"),
            "pin it: add a tag (name:tag) or a digest",
        );
        return None;
    }
    Some(ImageRef { name, digest })
}
