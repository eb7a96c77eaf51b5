CREATE TABLE trusted_devices (
    id_hash     BLOB PRIMARY KEY,
    user_name   TEXT NOT NULL,
    passed_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX trusted_devices_by_user ON trusted_devices (user_name);
