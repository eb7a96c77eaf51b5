//! The users file: who is in which group, their e-mail, and (for apps that use the
//! gateway's login page) their argon2id password hash. Read with the same strict
//! reader as the main file, so its errors name its own lines.
//!
//! ```yaml
//! users:
//!   alice:
//!     password: $argon2id$v=19$m=19456,t=2,p=1$...   # portvakt hash-password
//!     groups: [admins]
//!     email: alice@example.com
//! ```

use std::collections::HashMap;
use std::path::Path;

use super::decode::{Decoder, Spanned};
use super::model::{UserEntry, Users};
use super::yaml;

const TOP_KEYS: &[&str] = &["users"];
const USER_KEYS: &[&str] = &["password", "groups", "email"];

/// Loads the users file named in the main file; its problems join `outer`'s errors.
pub fn load(outer: &mut Decoder, path: &Spanned<String>, base: &Path) -> Users {
    let full = base.join(&path.value);
    let text = match std::fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            outer.error(
                path.at,
                &path.key,
                format!("cannot read the users file {}: {e}", full.display()),
            );
            return Users::default();
        }
    };
    let mut d = Decoder::new(full.display().to_string());
    let users = match yaml::parse(&text) {
        Ok((root, duplicates)) => {
            for p in duplicates {
                d.error(p.at, &p.path, p.message);
            }
            decode(&mut d, &root)
        }
        Err(problems) => {
            for p in problems {
                d.error(p.at, &p.path, p.message);
            }
            Users::default()
        }
    };
    outer.absorb(d);
    users
}

fn decode(d: &mut Decoder, root: &yaml::Node) -> Users {
    let mut by_name = HashMap::new();
    let Some(mut top) = d.map(root, "", TOP_KEYS) else {
        return Users::default();
    };
    if let Some((node, key)) = top.require(d, "users", root.at, "a mapping of user names to their settings") {
        for (name, settings) in d.named_entries(node, &key) {
            let user_key = format!("{key}.{}", name.name);
            let Some(mut m) = d.map(settings, &user_key, USER_KEYS) else {
                continue;
            };
            let mut entry = UserEntry::default();
            if let Some((n, k)) = m.get("password") {
                entry.password = d.string(n, &k).filter(|phc| {
                    let ok = argon2::PasswordHash::new(phc).is_ok_and(|h| h.algorithm.as_str() == "argon2id");
                    if !ok {
                        d.error(
                            n.at,
                            &k,
                            "expected an argon2id hash from `portvakt hash-password`, never a plain password",
                        );
                    }
                    ok
                });
            }
            if let Some((n, k)) = m.get("groups") {
                entry.groups = d.list(n, &k, "group names", |d, n, k| d.string(n, k)).into();
            }
            if let Some((n, k)) = m.get("email") {
                entry.email = d.string(n, &k).filter(|e| {
                    let ok = e.contains('@') && !e.contains(char::is_whitespace);
                    if !ok {
                        d.error(n.at, &k, format!("`{e}` is not an e-mail address"));
                    }
                    ok
                });
            }
            m.finish(d);
            match by_name.entry(name.name.trim().to_lowercase()) {
                std::collections::hash_map::Entry::Occupied(_) => d.error(
                    name.at,
                    &user_key,
                    format!(
                        "`{}` is already listed: user names are not case-sensitive",
                        name.name
                    ),
                ),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(entry);
                }
            }
        }
    }
    top.finish(d);
    Users::new(by_name)
}
