//! The strict reader that turns a YAML tree into typed values.
//!
//! Every reading function records what is wrong and carries on, so that one run of
//! `portvakt check` shows all problems of a file. A value that could not be read is
//! `None`, and the caller simply leaves it out of the model it builds.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::error::ConfigError;
use super::yaml::{Key, Node, Pos, Value};

/// A value together with where it was written, for errors found after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Pos,
    pub key: String,
}

pub struct Decoder {
    file: String,
    errors: Vec<ConfigError>,
}

impl Decoder {
    pub fn new(file: impl Into<String>) -> Self {
        Decoder {
            file: file.into(),
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, at: Pos, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            at,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Takes in the errors of another file's decoder (an included file).
    pub fn absorb(&mut self, other: Decoder) {
        self.errors.extend(other.errors);
    }

    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.at.line, e.at.column));
        self.errors
    }

    /// Opens a mapping for reading its keys one by one; `allowed` lists the keys this
    /// mapping may hold, for the unknown-key message.
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Option<MapReader<'n>> {
        match &node.value {
            Value::Map(entries) => Some(MapReader {
                entries,
                used: vec![false; entries.len()],
                path: key.to_owned(),
                allowed,
            }),
            _ => {
                self.error(
                    node.at,
                    key,
                    format!(
                        "expected a mapping with keys {}, found {}",
                        list(allowed),
                        describe(node)
                    ),
                );
                None
            }
        }
    }

    /// The entries of a mapping whose keys are names chosen by the user (app names).
    pub fn named_entries<'n>(&mut self, node: &'n Node, key: &str) -> &'n [(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            _ => {
                self.error(
                    node.at,
                    key,
                    format!(
                        "expected a mapping of names to settings, found {}",
                        describe(node)
                    ),
                );
                &[]
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, key: &str, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            _ => {
                self.error(
                    node.at,
                    key,
                    format!("expected a list of {what}, found {}", describe(node)),
                );
                &[]
            }
        }
    }

    pub fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, plain: true } if text == "true" || text == "false" => {
                self.error(
                    node.at,
                    key,
                    format!("expected text, found the boolean {text}; write \"{text}\" if text is meant"),
                );
                None
            }
            Value::Scalar { text, .. } if text.is_empty() => {
                self.error(node.at, key, "expected text, found an empty string");
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.error(node.at, key, format!("expected text, found {}", describe(node)));
                None
            }
        }
    }

    pub fn spanned_string(&mut self, node: &Node, key: &str) -> Option<Spanned<String>> {
        self.string(node, key).map(|value| Spanned {
            value,
            at: node.at,
            key: key.to_owned(),
        })
    }

    pub fn bool(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar { text, plain: true } if text == "true" => Some(true),
            Value::Scalar { text, plain: true } if text == "false" => Some(false),
            _ => {
                self.error(
                    node.at,
                    key,
                    format!("expected true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node, key: &str, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
        let parsed = match &node.value {
            Value::Scalar { text, plain: true } => text.replace('_', "").parse::<u64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    node.at,
                    key,
                    format!(
                        "expected a whole number from {} to {}, found {}",
                        range.start(),
                        range.end(),
                        describe(node)
                    ),
                );
                None
            }
        }
    }

    /// Durations are written as `30s`, `15m`, `12h`, `1h 30m`.
    pub fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let text = match &node.value {
            Value::Scalar { text, .. } => text,
            _ => {
                self.error(
                    node.at,
                    key,
                    format!(
                        "expected a duration such as 30s, 15m or 12h, found {}",
                        describe(node)
                    ),
                );
                return None;
            }
        };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.error(node.at, key, "a duration must be longer than zero");
                None
            }
            Err(_) => {
                self.error(
                    node.at,
                    key,
                    format!("`{text}` is not a duration; write a number and a unit, such as 30s, 15m or 12h"),
                );
                None
            }
        }
    }

    pub fn socket_addr(&mut self, node: &Node, key: &str) -> Option<SocketAddr> {
        let text = self.string(node, key)?;
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    node.at,
                    key,
                    format!("`{text}` is not an address and port such as 127.0.0.1:8080 or [::]:8443"),
                );
                None
            }
        }
    }

    /// A CIDR network; a bare address means that single host.
    pub fn network(&mut self, node: &Node, key: &str) -> Option<IpNet> {
        let text = self.string(node, key)?;
        let parsed = text
            .parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        match parsed {
            Some(net) if net.trunc() == net => Some(net),
            Some(net) => {
                self.error(
                    node.at,
                    key,
                    format!("`{text}` has host bits set; did you mean {}?", net.trunc()),
                );
                None
            }
            None => {
                self.error(
                    node.at,
                    key,
                    format!("`{text}` is not a network; write CIDR such as 10.0.0.0/8, 2001:db8::/32 or a single address"),
                );
                None
            }
        }
    }

    pub fn list<T>(
        &mut self,
        node: &Node,
        key: &str,
        what: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Vec<T> {
        let items = self.seq(node, key, what);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| item(self, n, &format!("{key}[{i}]")))
            .collect()
    }
}

/// Reads the keys of one mapping; whatever is left unread when it is finished is an
/// unknown key.
pub struct MapReader<'n> {
    entries: &'n [(Key, Node)],
    used: Vec<bool>,
    path: String,
    allowed: &'static [&'static str],
}

impl<'n> MapReader<'n> {
    pub fn get(&mut self, name: &str) -> Option<(&'n Node, String)> {
        let entries = self.entries;
        let i = entries.iter().position(|(k, _)| k.name == name)?;
        self.used[i] = true;
        Some((&entries[i].1, self.child(name)))
    }

    /// Like `get`, but records an error when the key is missing.
    pub fn require(
        &mut self,
        d: &mut Decoder,
        name: &str,
        at: Pos,
        what: &str,
    ) -> Option<(&'n Node, String)> {
        let found = self.get(name);
        if found.is_none() {
            d.error(at, &self.path, format!("missing `{name}`: {what}"));
        }
        found
    }

    pub fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Reports every key that no reader asked for.
    pub fn finish(self, d: &mut Decoder) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let hint = match closest(&key.name, self.allowed) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            };
            d.error(
                key.at,
                &self.child(&key.name),
                format!(
                    "unknown key `{}`{hint} Valid keys here: {}",
                    key.name,
                    list(self.allowed)
                ),
            );
        }
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The allowed name nearest to a misspelt one, if it is near enough to be a typo.
fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "nothing".into(),
        Value::Scalar { text, .. } => format!("`{text}`"),
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(closest("upstram", &["upstream", "hosts"]), Some("upstream"));
        assert_eq!(closest("zzz", &["upstream", "hosts"]), None);
    }

    #[test]
    fn every_bad_value_is_reported() {
        let (doc, _) = yaml::parse("a: [x, 1.5, 70000]\n").unwrap();
        let mut d = Decoder::new("f.yaml");
        let mut m = d.map(&doc, "", &["a"]).unwrap();
        let (node, key) = m.get("a").unwrap();
        let ports = d.list(node, &key, "ports", |d, n, k| d.integer(n, k, 1..=65535));
        m.finish(&mut d);
        assert!(ports.is_empty());
        let errors = d.into_errors();
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[1].key, "a[1]");
    }

    #[test]
    fn durations_need_a_unit() {
        let (doc, _) = yaml::parse("[30s, 15m, 12h, 30, 0s]").unwrap();
        let mut d = Decoder::new("f.yaml");
        let got = d.list(&doc, "d", "durations", |d, n, k| d.duration(n, k));
        assert_eq!(got.len(), 3);
        assert_eq!(d.into_errors().len(), 2);
    }

    #[test]
    fn networks_must_not_have_host_bits() {
        let (doc, _) = yaml::parse("[10.0.0.0/8, 10.1.2.3/8, 192.0.2.7, nope]").unwrap();
        let mut d = Decoder::new("f.yaml");
        let got = d.list(&doc, "n", "networks", |d, n, k| d.network(n, k));
        assert_eq!(got.len(), 2);
        let errors = d.into_errors();
        assert!(errors[0].message.contains("did you mean 10.0.0.0/8"));
    }
}
