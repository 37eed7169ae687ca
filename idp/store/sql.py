"""What both SQL back ends share: the columns their rows are read with, and argument checks."""

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
SELECT_IDENTITIES = (
    "SELECT issuer, subject, user_id, email, email_verified, created_at FROM identities"
)
SELECT_REFRESH = (
    "SELECT token_hash, family_id, client_id, user_id, scopes, resource, auth_time, sid,"
    " created_at, expires_at, family_expires_at, used_at FROM refresh_tokens"
)


def positive(seconds: float) -> float:
    """A ``ttl`` or ``window``: Redis refuses zero and negative ones, so every back end does."""
    if seconds <= 0:
        raise ValueError("ttl and window must be positive")
    return seconds


def use_time(now: int) -> int:
    """When a refresh token is used; ``used_at = 0`` means unused, so it must be positive."""
    if now <= 0:
        raise ValueError("now must be a positive Unix time")
    return now
