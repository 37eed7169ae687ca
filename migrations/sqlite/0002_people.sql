-- People, their consents and their refresh tokens (SQLite).
-- The foreign keys hold because every connection runs PRAGMA foreign_keys = ON
-- (see idp/store/sqlite.py); JSON is stored as text, times are Unix seconds.

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,     -- normalised by the caller
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    name           TEXT,
    created_at     INTEGER NOT NULL
);

CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,                -- '' when the consent names no resource
    scopes     TEXT NOT NULL,                -- JSON array of strings
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);

-- The primary key serves lookups by user; this one serves the cascade from clients.
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE refresh_tokens (
    token_hash        TEXT PRIMARY KEY,
    family_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    scopes            TEXT NOT NULL,         -- JSON array of strings
    resource          TEXT NOT NULL,
    auth_time         INTEGER NOT NULL,
    sid               TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,      -- idle expiry of this token
    family_expires_at INTEGER NOT NULL,      -- absolute end of its family
    used_at           INTEGER NOT NULL DEFAULT 0   -- 0 while unused
);

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_family_expires_at ON refresh_tokens (family_expires_at);
