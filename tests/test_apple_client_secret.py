"""Apple's client secret: an ES256 JWT of our own, at most six months long, made again before
it runs out."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import ECKey

from idp.connectors.apple import AUDIENCE, SECRET_LIFETIME, ClientSecret, first_sign_in_name

SIX_MONTHS = 15_777_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_secret_names_team_key_and_client_and_verifies_with_the_public_key() -> None:
    key = ECKey.generate_key("P-256")
    secret = ClientSecret(key, team_id="TEAM123456", key_id="KEY1234567", client_id="web.app")
    token = jwt.decode(secret.value(), ECKey.import_key(key.as_dict(private=False)))
    assert (token.header["alg"], token.header["kid"]) == ("ES256", "KEY1234567")
    claims = token.claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("TEAM123456", "web.app", AUDIENCE)
    assert 0 < claims["exp"] - claims["iat"] <= SIX_MONTHS


def test_the_secret_is_reused_and_renewed_before_it_expires() -> None:
    clock = Clock()
    key = ECKey.generate_key("P-256")
    secret = ClientSecret(key, team_id="T", key_id="K", client_id="c", clock=clock)
    first = secret.value()
    clock.now += 86400
    assert secret.value() == first
    clock.now += SECRET_LIFETIME - 3 * 86400  # within the renewal margin
    renewed = secret.value()
    assert renewed != first
    assert jwt.decode(renewed, secret._key).claims["exp"] > clock.now + 86400


def test_the_first_sign_in_name_is_read_from_the_user_field_only_when_well_formed() -> None:
    assert first_sign_in_name('{"name":{"firstName":"Jo","lastName":"Doe"}}') == "Jo Doe"
    assert first_sign_in_name('{"name":"Jo"}') is None
    assert first_sign_in_name("not json") is None
    assert first_sign_in_name(None) is None
    assert first_sign_in_name("[1]") is None
