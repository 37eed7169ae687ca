-- Deployments and their surfaces, the access log, invites and member roles (PostgreSQL,
-- issue #5). Times are Unix seconds. A deployment's API keys (api_keys.deployment_id) have no
-- foreign key: the store deletes them in the transaction that deletes the deployment.

CREATE TABLE deployments (
    deployment_id  text PRIMARY KEY,
    org_id         text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    name           text NOT NULL,
    urls           jsonb NOT NULL,           -- array; the first is where surfaces live
    surfaces       jsonb NOT NULL,           -- array of objects, one per Surface
    allow          jsonb NOT NULL DEFAULT '[]',  -- array of allow patterns
    secrets_sealed jsonb NOT NULL DEFAULT '{}',  -- object: surface name -> sealed secret
    created_at     bigint NOT NULL,
    updated_at     bigint NOT NULL,
    revision       bigint NOT NULL DEFAULT 1,    -- grows by one on every update
    -- Lets an invite's (deployment_id, org_id) reference the pair, so the two cannot disagree.
    UNIQUE (deployment_id, org_id)
);

CREATE INDEX deployments_org_id ON deployments (org_id, created_at);

-- NULL for resources an operator registered; a deployment's own go with it.
ALTER TABLE resources ADD COLUMN deployment_id text
    REFERENCES deployments (deployment_id) ON DELETE CASCADE;

CREATE INDEX resources_deployment_id ON resources (deployment_id);

CREATE INDEX api_keys_deployment_id ON api_keys (deployment_id);

-- One row per decision about a request to a surface. No foreign keys: the log outlives a
-- deleted deployment until retention (purge by ``at``) removes it.
CREATE TABLE access_log (
    event_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- orders the log
    at             bigint NOT NULL,
    org_id         text NOT NULL,
    deployment_id  text NOT NULL,
    surface        text NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    principal      text NOT NULL,            -- an email, client id or key id; never a credential
    principal_kind text NOT NULL,
    outcome        text NOT NULL,            -- allowed or denied
    reason         text NOT NULL,
    client_address text NOT NULL,
    source         text NOT NULL DEFAULT 'idp'   -- idp, or sibling when a sibling reported it
);

-- Serves the listing (one deployment, newest first, paged by event_id) and the purge.
CREATE INDEX access_log_deployment_id ON access_log (deployment_id, event_id DESC);
CREATE INDEX access_log_at ON access_log (at);

CREATE TABLE invites (
    invite_id     text PRIMARY KEY,
    deployment_id text NOT NULL,
    org_id        text NOT NULL,             -- the deployment's organization
    email         text NOT NULL,             -- normalised by the caller
    token_hash    text NOT NULL UNIQUE,      -- hash of the link's token; never the token
    return_to     text NOT NULL,             -- one of the deployment's urls
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    created_by    text NOT NULL DEFAULT '',
    used_at       bigint,                    -- NULL: not used
    used_by       text,                      -- the person who used it
    revoked_at    bigint,                    -- NULL: not revoked
    FOREIGN KEY (deployment_id, org_id)
        REFERENCES deployments (deployment_id, org_id) ON DELETE CASCADE
);

CREATE INDEX invites_deployment_id ON invites (deployment_id, created_at);

ALTER TABLE org_members ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('member', 'admin'));
