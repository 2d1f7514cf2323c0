//! A list's name and its Redis key: the one place both lists (`[lists.<name>]`) and feeds
//! (`[feeds.<name>] list = ...`) take them from.

/// The Redis key of list `name`: `<key_prefix>{lists}:<name>`, every list in the `{lists}` slot.
pub fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}{{lists}}:{name}")
}

/// A list name is what follows `{lists}:` in the key: no hash tag, space, or `.` (a feed's
/// staging and lock keys end in `.new` and `.lock`).
pub fn check(name: &str) -> Result<(), String> {
    crate::plain_name::check("list", name, " (it is part of a Redis key)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert_eq!(key("ipcheck:", "tor"), "ipcheck:{lists}:tor");
        assert!(check("google-bot_2").is_ok());
        for bad in ["", "a b", "tor.new", "{x}", &"x".repeat(65)] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
