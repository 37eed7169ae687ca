-- Clients, resources, signing keys and the ephemeral table (PostgreSQL).
-- Times are Unix seconds (ephemeral expiry as a double).

CREATE TABLE clients (
    client_id               text PRIMARY KEY,
    metadata                jsonb NOT NULL,
    created_at              bigint NOT NULL,
    secret_hash             text,
    secret_expires_at       bigint NOT NULL DEFAULT 0,
    registration_token_hash text
);

CREATE INDEX clients_created_at ON clients (created_at);

CREATE TABLE resources (
    uri        text PRIMARY KEY,
    scopes     text[] NOT NULL,
    token_ttl  bigint NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL,
    generation   integer NOT NULL,
    private_jwe  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   bigint NOT NULL,
    activates_at bigint NOT NULL,
    UNIQUE (alg, generation)
);

CREATE TABLE ephemeral (
    key        text PRIMARY KEY,
    value      bytea NOT NULL DEFAULT '\x',
    count      bigint NOT NULL DEFAULT 0,
    expires_at double precision NOT NULL
);

CREATE INDEX ephemeral_expires_at ON ephemeral (expires_at);
