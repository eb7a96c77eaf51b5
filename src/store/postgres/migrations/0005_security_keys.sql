-- Security keys and passkeys (WebAuthn) registered as a second factor. The
-- credential is webauthn-rs's record of it (public key, signature counter, backup
-- state) as JSON: public material, updated at each use.
CREATE TABLE security_keys (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    credential_id  BYTEA NOT NULL UNIQUE,
    rp_id          TEXT NOT NULL,
    credential     BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    UNIQUE (user_name, name)
);
