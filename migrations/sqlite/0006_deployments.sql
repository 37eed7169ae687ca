-- Deployments and their surfaces, the access log, invites and member roles (SQLite, issue #5).
-- The foreign keys hold because every connection runs PRAGMA foreign_keys = ON; JSON is stored
-- as text, times are Unix seconds. A deployment's API keys (api_keys.deployment_id) have no
-- foreign key: the store deletes them in the transaction that deletes the deployment.

CREATE TABLE deployments (
    deployment_id  TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    urls           TEXT NOT NULL,            -- JSON array; the first is where surfaces live
    surfaces       TEXT NOT NULL,            -- JSON array of objects, one per Surface
    allow          TEXT NOT NULL DEFAULT '[]',   -- JSON array of allow patterns
    secrets_sealed TEXT NOT NULL DEFAULT '{}',   -- JSON object: surface name -> sealed secret
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    revision       INTEGER NOT NULL DEFAULT 1,   -- grows by one on every update
    -- Lets an invite's (deployment_id, org_id) reference the pair, so the two cannot disagree.
    UNIQUE (deployment_id, org_id)
);

CREATE INDEX deployments_org_id ON deployments (org_id, created_at);

-- NULL for resources an operator registered; a deployment's own go with it.
ALTER TABLE resources ADD COLUMN deployment_id TEXT
    REFERENCES deployments (deployment_id) ON DELETE CASCADE;

CREATE INDEX resources_deployment_id ON resources (deployment_id);

CREATE INDEX api_keys_deployment_id ON api_keys (deployment_id);

-- One row per decision about a request to a surface. No foreign keys: the log outlives a
-- deleted deployment until retention (purge by ``at``) removes it.
CREATE TABLE access_log (
    event_id       INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so it orders the log
    at             INTEGER NOT NULL,
    org_id         TEXT NOT NULL,
    deployment_id  TEXT NOT NULL,
    surface        TEXT NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    principal      TEXT NOT NULL,            -- an email, client id or key id; never a credential
    principal_kind TEXT NOT NULL,
    outcome        TEXT NOT NULL,            -- allowed or denied
    reason         TEXT NOT NULL,
    client_address TEXT NOT NULL,
    source         TEXT NOT NULL DEFAULT 'idp'   -- idp, or sibling when a sibling reported it
);

-- Serves the listing (one deployment, newest first, paged by event_id) and the purge.
CREATE INDEX access_log_deployment_id ON access_log (deployment_id, event_id DESC);
CREATE INDEX access_log_at ON access_log (at);

CREATE TABLE invites (
    invite_id     TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    org_id        TEXT NOT NULL,             -- the deployment's organization
    email         TEXT NOT NULL,             -- normalised by the caller
    token_hash    TEXT NOT NULL UNIQUE,      -- hash of the link's token; never the token
    return_to     TEXT NOT NULL,             -- one of the deployment's urls
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    used_at       INTEGER,                   -- NULL: not used
    used_by       TEXT,                      -- the person who used it
    revoked_at    INTEGER,                   -- NULL: not revoked
    FOREIGN KEY (deployment_id, org_id)
        REFERENCES deployments (deployment_id, org_id) ON DELETE CASCADE
);

CREATE INDEX invites_deployment_id ON invites (deployment_id, created_at);

ALTER TABLE org_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('member', 'admin'));
