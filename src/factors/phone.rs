//! Phone numbers for text-message codes: read as the user types them, kept in one
//! international form (E.164: `+` and 8 to 15 digits), shown masked.

/// The number in international form, if `typed` is one: spaces, dashes, dots and
/// brackets are dropped, and a leading `00` is read as `+`. A number without its
/// country code is refused rather than guessed.
pub fn normalise(typed: &str) -> Option<String> {
    let mut kept = String::with_capacity(typed.len());
    for c in typed.trim().chars() {
        match c {
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            '+' if kept.is_empty() => kept.push('+'),
            '0'..='9' => kept.push(c),
            _ => return None,
        }
    }
    let digits = match kept.strip_prefix('+') {
        Some(digits) => digits,
        None => kept.strip_prefix("00")?,
    };
    let plausible = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
    plausible.then(|| format!("+{digits}"))
}

/// Whether texts may go to `number`: it begins with one of `prefixes` (`+46`),
/// or no prefixes are named.
pub fn allowed(number: &str, prefixes: &[String]) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| number.starts_with(p.as_str()))
}

/// A number shown without giving it away: its last two digits only.
pub fn mask(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let shown = digits.len().saturating_sub(2);
    let tail: String = digits[shown..].iter().collect();
    format!("+{}{tail}", "•".repeat(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_in_their_international_form_or_not_at_all() {
        for (typed, read) in [
            ("+46 70 123 45 67", Some("+46701234567")),
            ("0046-70-123.45.67", Some("+46701234567")),
            ("+1 (415) 555-0100", Some("+14155550100")),
            (" +4670\u{a0}1234567 ", Some("+46701234567")),
            // No country code: which country is not guessed.
            ("070-123 45 67", None),
            ("+0701234567", None),
            ("+46 70", None),
            ("+1234567890123456", None),
            ("+46 70 123 45 67 ext 2", None),
            ("+46+70", None),
            ("", None),
            ("+", None),
            ("+46７0123456", None),
        ] {
            assert_eq!(normalise(typed).as_deref(), read, "{typed:?}");
        }
    }

    #[test]
    fn only_numbers_of_the_named_countries_are_allowed() {
        let nordic = ["+46".to_owned(), "+47".to_owned()];
        assert!(allowed("+46701234567", &nordic));
        assert!(!allowed("+88213000000", &nordic));
        assert!(!allowed("+19005550100", &nordic));
        assert!(allowed("+19005550100", &[]));
    }

    #[test]
    fn numbers_are_masked_to_their_last_two_digits() {
        assert_eq!(mask("+46701234567"), "+•••••••••67");
        assert_eq!(mask("+1"), "+1");
    }
}
