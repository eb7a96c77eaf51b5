//! Query conditions that tell "the login" apart from the other pages one script
//! serves (`/index.php?do=login`, `/doku.php?do=login`).

/// Pairs that must each appear exactly once in a request's query with exactly this
/// value. No conditions: every query matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryConditions(Vec<(String, String)>);

impl QueryConditions {
    pub fn new(pairs: Vec<(String, String)>) -> QueryConditions {
        QueryConditions(pairs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Whether `query` meets every condition. A key given twice, or in another case,
    /// meets none: the app might read the other copy.
    pub fn met_by(&self, query: Option<&str>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(query) = query else { return false };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        self.0.iter().all(|(key, want)| {
            let mut given = pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key));
            matches!((given.next(), given.next()), (Some((k, v)), None) if k == key && v == want)
        })
    }

    /// `?k=v&...` for messages and redirects; empty without conditions.
    pub fn to_query(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut s = form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
        s.extend_pairs(&self.0);
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_condition_must_hold_once_and_exactly() {
        let login = QueryConditions::new(vec![("do".into(), "login".into())]);
        assert!(login.met_by(Some("do=login")));
        assert!(login.met_by(Some("id=start&do=login")));
        assert!(!login.met_by(None));
        assert!(!login.met_by(Some("do=admin")));
        assert!(!login.met_by(Some("do=login&do=admin")));
        assert!(!login.met_by(Some("do=login&DO=admin")));
        assert!(!login.met_by(Some("Do=login")));
        assert!(QueryConditions::default().met_by(Some("anything")));
        assert_eq!(login.to_query(), "?do=login");
    }
}
