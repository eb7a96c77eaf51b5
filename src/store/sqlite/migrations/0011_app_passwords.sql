-- App passwords: a credential of its own for one client of one app, stored as an
-- argon2id hash; for an HTTP Basic app, the user's own password there sealed under
-- a key derived from the app password.
CREATE TABLE app_passwords (
    id            INTEGER PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    app           TEXT NOT NULL,
    name          TEXT NOT NULL,
    phc           TEXT NOT NULL,
    sealed_secret BLOB,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    app_refused   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_name, app, name)
);
