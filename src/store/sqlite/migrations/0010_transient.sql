-- Short-lived state every gateway must see: challenges in progress, withheld
-- answers, addresses waiting for their code (sealed by the gateway).
CREATE TABLE transient (
    kind       TEXT NOT NULL,
    key        BLOB NOT NULL,
    sealed     BLOB NOT NULL,
    version    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX transient_by_expiry ON transient (expires_at);
