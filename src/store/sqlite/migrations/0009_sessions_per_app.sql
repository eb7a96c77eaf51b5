-- Sessions from before this migration name no app and are good for none.
ALTER TABLE sessions ADD COLUMN app TEXT NOT NULL DEFAULT '';
CREATE TABLE mfa_defaults (
    app         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    since       BIGINT NOT NULL
);
