-- Organizations, their members, API keys and SSO connections (PostgreSQL).
-- Times are Unix seconds. Secrets are never stored in clear: an API key as an HMAC of the whole
-- key, an SSO connection's client secret sealed under a key from the environment.

CREATE TABLE organizations (
    org_id     text PRIMARY KEY,
    name       text NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE org_members (
    org_id     text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- The primary key serves lookups by organization; this one serves the cascade from users.
CREATE INDEX org_members_user_id ON org_members (user_id);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,          -- the non-secret lookup prefix of the key
    org_id        text REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id       text REFERENCES users (user_id) ON DELETE CASCADE,
    deployment_id text,                      -- keys of one deployment (issue #5)
    name          text NOT NULL DEFAULT '',
    scopes        text[] NOT NULL,
    secret_hash   text NOT NULL,             -- hash of the whole key
    created_at    bigint NOT NULL,
    expires_at    bigint,                    -- NULL: never
    revoked_at    bigint,                    -- NULL: not revoked
    last_used_at  bigint                     -- NULL: never used
);

CREATE INDEX api_keys_org_id ON api_keys (org_id);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE sso_connections (
    connection_id             text PRIMARY KEY,
    org_id                    text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    name                      text NOT NULL,
    provider                  text NOT NULL,
    auth_method               text NOT NULL,
    oidc_issuer               text NOT NULL,
    oidc_client_id            text NOT NULL,
    oidc_client_secret_sealed text NOT NULL,  -- a compact JWE, see idp/sealing.py
    enforce_sso               boolean NOT NULL DEFAULT false,
    enabled                   boolean NOT NULL DEFAULT true,
    created_at                bigint NOT NULL,
    updated_at                bigint NOT NULL
);

CREATE INDEX sso_connections_org_id ON sso_connections (org_id, created_at);

-- One row per email domain: the primary key makes a domain belong to one connection at most.
CREATE TABLE sso_domains (
    domain        text PRIMARY KEY,          -- normalised by the caller (lowercase, IDNA)
    connection_id text NOT NULL REFERENCES sso_connections (connection_id) ON DELETE CASCADE
);

CREATE INDEX sso_domains_connection_id ON sso_domains (connection_id);
