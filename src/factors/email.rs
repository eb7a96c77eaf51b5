//! E-mail addresses as the pages show them. The codes sent to them are
//! [`SentCode`](super::sent_code::SentCode)s.

/// An address shown without giving it away: `a•••@example.com`.
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask("alice@example.com"), "a•••@example.com");
        assert_eq!(mask("nonsense"), "•••");
    }
}
