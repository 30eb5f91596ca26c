//! "Did you mean …?" for configuration keys, module inputs and other names a person types.

/// The known name closest to `word`, when it is close enough to be a likely typo (an edit
/// distance of at most 2, or a quarter of the name's length for long names).
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
        assert_eq!(edit_distance("ünï", "uni"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
