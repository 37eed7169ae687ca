-- Upstream identities linked to people (SQLite).
-- An identity is keyed by its issuer and that issuer's immutable subject, never by an email.

CREATE TABLE identities (
    issuer         TEXT NOT NULL,
    subject        TEXT NOT NULL,            -- compared exactly, case included
    user_id        TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    email          TEXT,                     -- as asserted at the last sign-in
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX identities_user_id ON identities (user_id);
