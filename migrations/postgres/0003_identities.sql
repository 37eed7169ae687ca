-- Upstream identities linked to people (PostgreSQL).
-- An identity is keyed by its issuer and that issuer's immutable subject, never by an email.

CREATE TABLE identities (
    issuer         text NOT NULL,
    subject        text NOT NULL,            -- compared exactly, case included
    user_id        text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    email          text,                     -- as asserted at the last sign-in
    email_verified boolean NOT NULL DEFAULT false,
    created_at     bigint NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX identities_user_id ON identities (user_id);
