-- People, their consents and their refresh tokens (PostgreSQL).
-- Times are Unix seconds.

CREATE TABLE users (
    user_id        text PRIMARY KEY,
    email          text NOT NULL UNIQUE,     -- normalised by the caller
    email_verified boolean NOT NULL DEFAULT false,
    name           text,
    created_at     bigint NOT NULL
);

CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE consents (
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id  text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource   text NOT NULL,                -- '' when the consent names no resource
    scopes     text[] NOT NULL,
    granted_at bigint NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);

-- The primary key serves lookups by user; this one serves the cascade from clients.
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE refresh_tokens (
    token_hash        text PRIMARY KEY,
    family_id         text NOT NULL,
    client_id         text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    scopes            text[] NOT NULL,
    resource          text NOT NULL,
    auth_time         bigint NOT NULL,
    sid               text NOT NULL,
    created_at        bigint NOT NULL,
    expires_at        bigint NOT NULL,       -- idle expiry of this token
    family_expires_at bigint NOT NULL,       -- absolute end of its family
    used_at           bigint NOT NULL DEFAULT 0    -- 0 while unused
);

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_family_expires_at ON refresh_tokens (family_expires_at);
