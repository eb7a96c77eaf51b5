//! Route rules indexed by path segment in a trie, so that finding the most specific
//! rule costs one hash lookup per path segment, however many rules there are.

use std::collections::HashMap;

use super::path::NormalisedPath;
use super::rule::{PathMatch, Rule};

#[derive(Debug, Default)]
struct TrieNode {
    /// Keyed with foldhash, not SipHash: every request hashes each of its path's
    /// segments here. Only the configuration inserts keys, so a client cannot
    /// crowd a bucket; lookups of its segments cost a hash each, whatever they are.
    children: HashMap<Box<str>, TrieNode, foldhash::fast::RandomState>,
    /// Rules with `PathMatch::Exact` ending here, conditional ones first.
    exact: Vec<usize>,
    /// Rules with `PathMatch::Prefix` ending here, conditional ones first.
    prefix: Vec<usize>,
}

/// Two rules that match the same requests with nothing to tell which is more specific.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConflict {
    pub first: usize,
    pub second: usize,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    rules: Vec<Rule>,
    root: TrieNode,
    case_insensitive: bool,
    /// Some rule accepts app passwords (known once, not looked for per request).
    any_app_passwords: bool,
}

impl RouteTable {
    /// Whether some rule accepts app passwords.
    pub fn any_app_passwords(&self) -> bool {
        self.any_app_passwords
    }

    /// Indexes the rules; rules that cannot be ordered are returned as conflicts.
    pub fn build(rules: Vec<Rule>, case_insensitive: bool) -> Result<Self, Vec<RuleConflict>> {
        let mut root = TrieNode::default();
        for (i, rule) in rules.iter().enumerate() {
            let mut node = &mut root;
            for segment in rule.path.split('/').filter(|s| !s.is_empty()) {
                let key = fold(segment, case_insensitive);
                node = node.children.entry(key.into()).or_default();
            }
            match rule.path_match {
                PathMatch::Exact => node.exact.push(i),
                PathMatch::Prefix => node.prefix.push(i),
            }
        }
        let mut conflicts = Vec::new();
        visit(&mut root, &mut |node| {
            for list in [&mut node.exact, &mut node.prefix] {
                for (a, &i) in list.iter().enumerate() {
                    for &j in &list[a + 1..] {
                        let (x, y) = (&rules[i], &rules[j]);
                        if x.has_conditions() == y.has_conditions() && x.methods_overlap(y) {
                            conflicts.push(RuleConflict { first: i, second: j });
                        }
                    }
                }
                list.sort_by_key(|&i| !rules[i].has_conditions());
            }
        });
        if conflicts.is_empty() {
            Ok(RouteTable {
                any_app_passwords: rules.iter().any(|r| r.app_passwords == Some(true)),
                rules,
                root,
                case_insensitive,
            })
        } else {
            conflicts.sort_by_key(|c| (c.first, c.second));
            Err(conflicts)
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules of the most specific path that has any rule for this method, in the
    /// order they are to be tried; empty when no rule covers the request.
    ///
    /// Order within a path: exact before prefix; a rule naming the method before one
    /// naming GET (which HEAD and OPTIONS follow when no rule names them) before one
    /// naming no method; conditional before unconditional.
    pub fn candidates(&self, path: &NormalisedPath, method: &str) -> Vec<usize> {
        let mut best = &self.root;
        let mut node = &self.root;
        let mut consumed_all = true;
        for segment in path.segments() {
            let child = if self.case_insensitive {
                node.children.get(segment.to_lowercase().as_str())
            } else {
                node.children.get(segment)
            };
            let Some(child) = child else {
                consumed_all = false;
                break;
            };
            node = child;
            if self.any_for(&node.prefix, method) {
                best = node;
            }
        }
        let mut out = Vec::new();
        if consumed_all && self.any_for(&node.exact, method) {
            self.collect(&node.exact, method, &mut out);
            self.collect(&node.prefix, method, &mut out);
        } else {
            self.collect(&best.prefix, method, &mut out);
        }
        out
    }

    fn any_for(&self, ids: &[usize], method: &str) -> bool {
        let follows_get = matches!(method, "HEAD" | "OPTIONS");
        ids.iter().any(|&i| {
            let rule = &self.rules[i];
            rule.methods.is_none() || rule.names_method(method) || (follows_get && rule.names_method("GET"))
        })
    }

    fn collect(&self, ids: &[usize], method: &str, out: &mut Vec<usize>) {
        let start = out.len();
        out.extend(ids.iter().filter(|&&i| self.rules[i].names_method(method)));
        if out.len() == start && matches!(method, "HEAD" | "OPTIONS") {
            out.extend(ids.iter().filter(|&&i| self.rules[i].names_method("GET")));
        }
        out.extend(ids.iter().filter(|&&i| self.rules[i].methods.is_none()));
    }
}

fn fold(segment: &str, case_insensitive: bool) -> String {
    if case_insensitive {
        segment.to_lowercase()
    } else {
        segment.to_owned()
    }
}

fn visit(node: &mut TrieNode, f: &mut impl FnMut(&mut TrieNode)) {
    f(node);
    for child in node.children.values_mut() {
        visit(child, f);
    }
}
