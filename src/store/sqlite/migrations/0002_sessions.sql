CREATE TABLE sessions (
    id_hash          BLOB PRIMARY KEY,
    user_name        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    second_factor_at BIGINT,
    method           TEXT NOT NULL,
    revoked          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_user ON sessions (user_name);
