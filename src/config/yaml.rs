//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! Built from `saphyr-parser` events rather than through serde, because the strict
//! decoder above it must report *every* problem of a file at once, each with its line
//! and column, and serde stops at the first. Duplicate keys are caught here, where
//! the parser still tells them apart.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in the file, both numbers 1-based as editors show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Self {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub at: Pos,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    /// A scalar's text; `plain` is false when it was quoted or a block scalar,
    /// which makes `"true"` a string and `true` a boolean.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub at: Pos,
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone)]
pub struct YamlProblem {
    pub at: Pos,
    /// The key path of the mapping the problem sits in, when known.
    pub path: String,
    pub message: String,
}

/// Parses one YAML document. Syntax errors end the parse (nothing after them can be
/// trusted) and are the `Err`; duplicate keys are returned beside the tree, which
/// keeps the first occurrence, so that decoding can go on and report the rest.
pub fn parse(text: &str) -> Result<(Node, Vec<YamlProblem>), Vec<YamlProblem>> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => builder.on_event(event, &span),
            Err(e) => {
                let m = e.marker();
                builder.problems.push(YamlProblem {
                    at: Pos {
                        line: m.line(),
                        column: m.col() + 1,
                    },
                    path: String::new(),
                    message: format!("YAML syntax error: {}", e.info()),
                });
                return Err(builder.problems);
            }
        }
    }
    let Builder {
        mut documents,
        problems,
        ..
    } = builder;
    match documents.len() {
        0 => Err(vec![YamlProblem {
            at: Pos { line: 1, column: 1 },
            path: String::new(),
            message: "the file is empty; it needs at least `listen` and `apps`".into(),
        }]),
        1 => Ok((documents.remove(0), problems)),
        _ => Err(vec![YamlProblem {
            at: documents[1].at,
            path: String::new(),
            message: "the file holds more than one YAML document; keep one".into(),
        }]),
    }
}

enum Open {
    Seq {
        items: Vec<Node>,
        at: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        at: Pos,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: std::collections::HashMap<usize, Node>,
    documents: Vec<Node>,
    problems: Vec<YamlProblem>,
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>, span: &Span) {
        let at = Pos::of(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(tag) = tag {
                    self.problem(
                        at,
                        format!(
                            "YAML tags such as `{}{}` are not supported",
                            tag.handle, tag.suffix
                        ),
                    );
                }
                let plain = style == ScalarStyle::Plain;
                let value = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                self.complete(Node { value, at }, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                if tag.is_some() {
                    self.problem(at, "YAML tags are not supported".into());
                }
                self.stack.push(Open::Seq {
                    items: Vec::new(),
                    at,
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                if tag.is_some() {
                    self.problem(at, "YAML tags are not supported".into());
                }
                self.stack.push(Open::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    at,
                    anchor,
                });
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq { items, at, anchor }) = self.stack.pop() {
                    self.complete(
                        Node {
                            value: Value::Seq(items),
                            at,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map {
                    entries, at, anchor, ..
                }) = self.stack.pop()
                {
                    self.complete(
                        Node {
                            value: Value::Map(entries),
                            at,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.complete(Node { at, ..node }, 0),
                None => self.problem(at, "alias to an unknown anchor".into()),
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }

    fn problem(&mut self, at: Pos, message: String) {
        self.problems.push(YamlProblem {
            at,
            path: String::new(),
            message,
        });
    }

    /// The key path of the innermost open collection, e.g. `apps.wiki.routes[2]`.
    fn open_path(&self) -> String {
        let mut path = String::new();
        let parents = self.stack.len().saturating_sub(1);
        for open in &self.stack[..parents] {
            match open {
                Open::Map {
                    pending_key: Some(k), ..
                } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k.name);
                }
                Open::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Open::Map {
                    pending_key: None, ..
                } => {}
            }
        }
        path
    }

    /// Places a finished node into whatever is open: a sequence, a mapping (as key
    /// or value), or the list of documents.
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let parent_path = self.open_path();
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries, pending_key, ..
            }) => match pending_key.take() {
                Some(key) => {
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        let message = format!(
                            "duplicate key `{}` (first set at line {}, column {}); a key may appear once per mapping",
                            key.name, first.at.line, first.at.column
                        );
                        let path = if parent_path.is_empty() {
                            key.name.clone()
                        } else {
                            format!("{parent_path}.{}", key.name)
                        };
                        self.problems.push(YamlProblem {
                            at: key.at,
                            path,
                            message,
                        });
                    } else {
                        entries.push((key, node));
                    }
                }
                None => match node.value {
                    Value::Scalar { text, .. } => {
                        *pending_key = Some(Key {
                            name: text,
                            at: node.at,
                        })
                    }
                    Value::Null => {
                        *pending_key = Some(Key {
                            name: String::new(),
                            at: node.at,
                        })
                    }
                    Value::Seq(_) | Value::Map(_) => {
                        // Keep the slot filled so the value that follows is not read as a key.
                        *pending_key = Some(Key {
                            name: String::new(),
                            at: node.at,
                        });
                        self.problems.push(YamlProblem {
                            at: node.at,
                            path: String::new(),
                            message: "a mapping key must be a plain name, not a list or mapping".into(),
                        });
                    }
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(node: &Node) -> Vec<&str> {
        match &node.value {
            Value::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn positions_are_one_based() {
        let (doc, _) = parse("a: 1\nb:\n  c: x\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.at, Pos { line: 2, column: 1 });
        let Value::Map(inner) = &entries[1].1.value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.at, Pos { line: 3, column: 3 });
        assert_eq!(map_keys(&doc), ["a", "b"]);
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_positions() {
        let (_, problems) = parse("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].at, Pos { line: 3, column: 1 });
        assert!(
            problems[0].message.contains("line 1, column 1"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn nested_duplicates_are_all_reported() {
        let (_, problems) = parse("x:\n  a: 1\n  a: 2\ny:\n  - b: 1\n    b: 2\n").unwrap();
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["x.a", "y[0].b"]);
    }

    #[test]
    fn quoted_scalars_are_not_plain() {
        let (doc, _) = parse("a: \"true\"\nb: true\nc: ~\n").unwrap();
        let Value::Map(e) = &doc.value else {
            panic!("not a map")
        };
        assert!(matches!(&e[0].1.value, Value::Scalar { plain: false, .. }));
        assert!(matches!(&e[1].1.value, Value::Scalar { plain: true, .. }));
        assert!(matches!(&e[2].1.value, Value::Null));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let problems = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(problems[0].message.starts_with("YAML syntax error"));
        assert!(problems[0].at.line >= 1);
    }

    #[test]
    fn aliases_resolve_to_the_anchored_value() {
        let (doc, _) = parse("a: &n [x, y]\nb: *n\n").unwrap();
        let Value::Map(e) = &doc.value else {
            panic!("not a map")
        };
        assert!(matches!(&e[1].1.value, Value::Seq(items) if items.len() == 2));
    }

    #[test]
    fn empty_and_multi_document_files_are_refused() {
        assert!(parse("").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
