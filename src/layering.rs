//! Which top-level module may use which: dependencies run one way, from the command
//! line down to the pure rules, and this test fails on any `crate::` path that goes
//! against it (and on any cycle the table itself might grow). ARCHITECTURE.md shows
//! the same table; `cargo test layering` proves it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module and the modules it may use. Below `portal`, nothing knows HTTP
/// servers; below `proxy`, nothing knows Pingora.
const MAY_USE: &[(&str, &[&str])] = &[
    (
        "cli",
        &["server", "auth", "config", "factors", "keys", "policy", "store"],
    ),
    ("server", &["proxy", "auth", "config", "store"]),
    (
        "proxy",
        &[
            "portal", "auth", "config", "factors", "keys", "login", "policy", "store",
        ],
    ),
    ("portal", &["auth", "config", "factors", "policy", "store"]),
    ("auth", &["config", "factors", "keys", "policy", "store"]),
    ("store", &["factors", "keys"]),
    ("config", &["factors", "login", "policy"]),
    ("policy", &[]),
    ("factors", &[]),
    ("keys", &[]),
    ("login", &[]),
];

/// The only modules that may name Pingora: the phases and the composition root.
const KNOW_PINGORA: &[&str] = &["proxy", "server"];

/// Every `crate::<module>` a source file names.
fn crate_paths(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in source.match_indices("crate::") {
        let before = source[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `portvakt_crate::`, say
        }
        let rest = &source[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c};`
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        } else {
            found.insert(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = Vec::new();
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        let module = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let may_use = allowed
            .get(module.as_str())
            .unwrap_or_else(|| panic!("src/{module}/ is not in MAY_USE: say where it stands"));
        modules.insert(module.clone());
        let mut files = Vec::new();
        sources(&path, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            if text.contains("pingora::") && !KNOW_PINGORA.contains(&module.as_str()) {
                wrong.push(format!("{} uses Pingora", file.display()));
            }
            for used in crate_paths(&text) {
                if used != module && !may_use.contains(&used.as_str()) {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layering:\n{}",
        wrong.join("\n")
    );
    let listed: BTreeSet<String> = allowed.keys().map(|k| k.to_string()).collect();
    assert_eq!(listed, modules, "MAY_USE lists exactly the folders under src/");
}

#[test]
fn the_table_has_no_cycle() {
    // Depth-first: a module on the current path met again is a cycle.
    fn visit<'a>(
        module: &'a str,
        table: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        assert!(
            !path.contains(&module),
            "cycle: {} -> {module}",
            path.join(" -> ")
        );
        if done.contains(module) {
            return;
        }
        path.push(module);
        for used in table.get(module).copied().unwrap_or_default() {
            visit(used, table, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let table: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut done = BTreeSet::new();
    for module in table.keys() {
        visit(module, &table, &mut Vec::new(), &mut done);
    }
}

#[test]
fn paths_are_read_in_every_spelling() {
    let found =
        crate_paths("use crate::{config, policy::Rule};\nlet x = crate::store::open();\nmy_crate::no");
    let expected: BTreeSet<String> = ["config", "policy", "store"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}
