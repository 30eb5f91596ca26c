//! "Did you mean …?" for configuration keys, module inputs and other names a person types.
//!
//! This is the one place names are matched; distances are `strsim`'s Levenshtein distance.

/// The known name closest to `word`, when it is close enough to be a likely typo (an edit
/// distance of at most 2, or a quarter of the name's length for long names).
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_intended_name() {
        let known = ["rpc", "ws", "chain_id", "confirmations", "log_chunk_size"];
        assert_eq!(closest("rcp", &known), Some("rpc"));
        assert_eq!(closest("chainid", &known), Some("chain_id"));
        assert_eq!(closest("confirmation", &known), Some("confirmations"));
        assert_eq!(closest("something_else", &known), None);
    }

    #[test]
    fn distance_counts_characters_not_bytes() {
        use strsim::levenshtein as edit_distance;
        assert_eq!(edit_distance("ünï", "uni"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("ünï", &["uni"]), Some("uni"));
    }
}
