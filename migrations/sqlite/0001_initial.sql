-- Clients, resources, signing keys and the ephemeral table (SQLite).
-- JSON is stored as text; times are Unix seconds (ephemeral expiry as a float).

CREATE TABLE clients (
    client_id               TEXT PRIMARY KEY,
    metadata                TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    secret_hash             TEXT,
    secret_expires_at       INTEGER NOT NULL DEFAULT 0,
    registration_token_hash TEXT
);

CREATE INDEX clients_created_at ON clients (created_at);

CREATE TABLE resources (
    uri        TEXT PRIMARY KEY,
    scopes     TEXT NOT NULL,          -- JSON array of strings
    token_ttl  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    private_jwe  TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,        -- JSON object
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    UNIQUE (alg, generation)
);

CREATE TABLE ephemeral (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL DEFAULT x'',
    count      INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);

CREATE INDEX ephemeral_expires_at ON ephemeral (expires_at);
