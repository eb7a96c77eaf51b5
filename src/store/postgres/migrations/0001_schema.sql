-- The schema of SQLite's migrations 0001-0009, in PostgreSQL's types.
CREATE TABLE users (
    name                 TEXT PRIMARY KEY,
    created_at           BIGINT NOT NULL,
    last_totp_step       BIGINT,
    enrolment_open_until BIGINT,
    mfa_opted_in         BOOLEAN NOT NULL DEFAULT FALSE,
    preferred_method     TEXT,
    email                TEXT
);
CREATE TABLE totp_devices (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    UNIQUE (user_name, name)
);
CREATE TABLE recovery_codes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    phc        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_name);
CREATE TABLE failures (
    subject      TEXT PRIMARY KEY,
    count        BIGINT NOT NULL,
    last_failure BIGINT,
    locked_until BIGINT
);
CREATE TABLE sessions (
    id_hash          BYTEA PRIMARY KEY,
    user_name        TEXT NOT NULL,
    app              TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    second_factor_at BIGINT,
    method           TEXT NOT NULL,
    revoked          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_by_user ON sessions (user_name);
CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    event   TEXT NOT NULL,
    actor   TEXT NOT NULL,
    subject TEXT NOT NULL,
    app     TEXT,
    client  TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit (subject, at);
CREATE FUNCTION portvakt_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END
$$;
CREATE TRIGGER audit_is_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION portvakt_audit_is_append_only();
CREATE TRIGGER audit_is_not_truncated BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION portvakt_audit_is_append_only();
CREATE TABLE trusted_devices (
    id_hash    BYTEA PRIMARY KEY,
    user_name  TEXT NOT NULL,
    passed_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX trusted_devices_by_user ON trusted_devices (user_name);
CREATE TABLE mfa_defaults (
    app         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    since       BIGINT NOT NULL
);
