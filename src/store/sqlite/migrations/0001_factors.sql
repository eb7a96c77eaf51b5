CREATE TABLE users (
    name            TEXT PRIMARY KEY,
    created_at      BIGINT NOT NULL,
    last_totp_step  BIGINT
);
CREATE TABLE totp_devices (
    id              INTEGER PRIMARY KEY,
    user_name       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    sealed_secret   BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    UNIQUE (user_name, name)
);
CREATE TABLE recovery_codes (
    id              INTEGER PRIMARY KEY,
    user_name       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    phc             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_name);
CREATE TABLE failures (
    subject         TEXT PRIMARY KEY,
    count           BIGINT NOT NULL,
    last_failure    BIGINT,
    locked_until    BIGINT
);
