-- What a user's earlier sign-ins came from (a browser, a network), as hashes:
-- a sign-in from none of them looks unusual (second_factor.unusual_sign_in).
CREATE TABLE sign_in_signals (
    user_name   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       BLOB NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (user_name, kind, value)
);
