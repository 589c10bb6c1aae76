//! Masking of sensitive values for logs and error messages: account numbers, member names and
//! id numbers never appear in full (bank practice; issue 4 "No secrets in logs").
//!
//! - account and id numbers keep their first 4 and last 4 characters:
//!   `6222000000000000001` → `6222***********0001`; 8 characters or fewer keep only the last 2;
//! - names keep their first character: `张三丰` → `张**`.

/// Masks an account or id number (characters, not bytes).
pub fn account(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    if n <= 8 {
        let keep = n.min(2);
        return "*".repeat(n - keep) + &chars[n - keep..].iter().collect::<String>();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[n - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

/// Masks a person's or company's name: first character kept, each other one a `*`.
pub fn name(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// Masks an id number (same rule as accounts).
pub fn id_number(s: &str) -> String {
    account(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_edges() {
        assert_eq!(account("6222000000000001"), "6222********0001");
        assert_eq!(account("6222000000000000001"), "6222***********0001");
        assert_eq!(account("12345678"), "******78");
        assert_eq!(account("1"), "1");
        assert_eq!(account(""), "");
        assert_eq!(name("张三丰"), "张**");
        assert_eq!(name("A"), "A");
        assert_eq!(id_number("110101199001011234"), "1101**********1234");
    }
}
