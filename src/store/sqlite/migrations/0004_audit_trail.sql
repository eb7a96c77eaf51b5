CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          BIGINT NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    app         TEXT,
    client      TEXT,
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit (subject, at);
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
