-- Organizations, their members, API keys and SSO connections (SQLite).
-- The foreign keys hold because every connection runs PRAGMA foreign_keys = ON; JSON is stored
-- as text, times are Unix seconds. Secrets are never stored in clear: an API key as an HMAC of
-- the whole key, an SSO connection's client secret sealed under a key from the environment.

CREATE TABLE organizations (
    org_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE org_members (
    org_id     TEXT NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- The primary key serves lookups by organization; this one serves the cascade from users.
CREATE INDEX org_members_user_id ON org_members (user_id);

CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,          -- the non-secret lookup prefix of the key
    org_id        TEXT REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id       TEXT REFERENCES users (user_id) ON DELETE CASCADE,
    deployment_id TEXT,                      -- keys of one deployment (issue #5)
    name          TEXT NOT NULL DEFAULT '',
    scopes        TEXT NOT NULL,             -- JSON array of strings
    secret_hash   TEXT NOT NULL,             -- hash of the whole key
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,                   -- NULL: never
    revoked_at    INTEGER,                   -- NULL: not revoked
    last_used_at  INTEGER                    -- NULL: never used
);

CREATE INDEX api_keys_org_id ON api_keys (org_id);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE sso_connections (
    connection_id             TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    provider                  TEXT NOT NULL,
    auth_method               TEXT NOT NULL,
    oidc_issuer               TEXT NOT NULL,
    oidc_client_id            TEXT NOT NULL,
    oidc_client_secret_sealed TEXT NOT NULL,  -- a compact JWE, see idp/sealing.py
    enforce_sso               INTEGER NOT NULL DEFAULT 0 CHECK (enforce_sso IN (0, 1)),
    enabled                   INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

CREATE INDEX sso_connections_org_id ON sso_connections (org_id, created_at);

-- One row per email domain: the primary key makes a domain belong to one connection at most.
CREATE TABLE sso_domains (
    domain        TEXT PRIMARY KEY,          -- normalised by the caller (lowercase, IDNA)
    connection_id TEXT NOT NULL REFERENCES sso_connections (connection_id) ON DELETE CASCADE
);

CREATE INDEX sso_domains_connection_id ON sso_domains (connection_id);
