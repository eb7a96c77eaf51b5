//! Query conditions that tell "the login" apart from the other pages one script
//! serves (`/index.php?do=login`).

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

    /// Whether `query` meets every condition and names no key but these and
    /// `extra` (such as the app's return parameter). A condition key given twice,
    /// or spelled so that some reader takes it for one (another case, a stray
    /// space or bracket, after a `;`), or any other key, meets nothing: an app
    /// might read that other key first, and the request is then not the login,
    /// only another page of the same script. No conditions: every query meets them.
    pub fn met_by(&self, query: Option<&str>, extra: &[String]) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let mut given: Vec<Option<String>> = vec![None; self.0.len()];
        for pair in query
            .unwrap_or_default()
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(key), Some(value)) = (decode(key), decode(value)) else {
                return false;
            };
            match self.0.iter().position(|(k, _)| *k == key) {
                Some(i) if given[i].is_none() => given[i] = Some(value),
                Some(_) => return false,
                None if extra.contains(&key) => {}
                None => return false,
            }
        }
        self.0
            .iter()
            .zip(&given)
            .all(|((_, want), got)| got.as_deref() == Some(want.as_str()))
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

/// One urlencoded key or value; `None` for bytes that are not text once decoded.
fn decode(part: &str) -> Option<String> {
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_condition_must_hold_once_and_exactly() {
        let login = QueryConditions::new(vec![("do".into(), "login".into())]);
        let next = ["next".to_owned()];
        let met = |q: &str| login.met_by(Some(q), &next);
        assert!(met("do=login"));
        assert!(met("do=login&next=%2Fadmin"));
        assert!(!login.met_by(None, &[]));
        for other in [
            "do=admin",
            "do=login&do=admin",
            "do=login&DO=admin",
            "Do=login",
            "do=login&page=admin",
            "do=login;page=admin",
            "do=login&%20do=show",
            "do=login&do%00x=show",
            "do=login&do[=show",
            "do=login%00",
            "do=%FF",
        ] {
            assert!(!met(other), "{other}");
        }
        assert!(QueryConditions::default().met_by(Some("anything"), &[]));
        assert_eq!(login.to_query(), "?do=login");
    }
}
