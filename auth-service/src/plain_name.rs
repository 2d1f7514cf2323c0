//! The names operators give to lists, feeds and databases: they become parts of Redis keys,
//! metric label values and words in `/readyz`, so one rule keeps them plain everywhere.

/// Longest name.
pub const MAX_LEN: usize = 64;

/// Whether `name` is 1 to [`MAX_LEN`] of `a-z`, `A-Z`, `0-9`, `_` and `-`.
pub fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `Ok` for a plain name, else the error naming `what` it is and `why` the rule holds.
pub fn check(what: &str, name: &str, why: &str) -> Result<(), String> {
    if is_plain(name) {
        Ok(())
    } else {
        Err(format!(
            "{what} name '{name}' must be 1 to {MAX_LEN} of a-z, A-Z, 0-9, _ and -{why}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        assert!(is_plain("google-bot_2"));
        for bad in ["", "a b", "tor.new", "{x}", "é", &"x".repeat(65)] {
            assert!(!is_plain(bad), "{bad}");
        }
        assert_eq!(
            check("list", "a b", " (it is part of a Redis key)"),
            Err("list name 'a b' must be 1 to 64 of a-z, A-Z, 0-9, _ and - (it is part of a Redis key)".to_owned())
        );
    }
}
