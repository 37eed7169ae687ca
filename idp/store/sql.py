"""SQL that both back ends share: the column lists their rows are read with."""

SELECT_CLIENTS = (
    "SELECT client_id, metadata, created_at, secret_hash, secret_expires_at,"
    " registration_token_hash FROM clients"
)
SELECT_KEYS = (
    "SELECT kid, alg, generation, private_jwe, public_jwk, created_at, activates_at"
    " FROM signing_keys"
)
SELECT_USERS = "SELECT user_id, email, email_verified, name, created_at FROM users"
SELECT_CONSENTS = "SELECT user_id, client_id, resource, scopes, granted_at FROM consents"
SELECT_REFRESH = (
    "SELECT token_hash, family_id, client_id, user_id, scopes, resource, auth_time, sid,"
    " created_at, expires_at, family_expires_at, used_at FROM refresh_tokens"
)
