"""Verifying compact JWS and their claims by the JOSE rules of SECURITY.md.

Attack tokens are built by hand and signed with real keys, so each refusal is the rule under
test and not a broken signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from idp.jose import (
    MAX_TOKEN_LENGTH,
    InvalidJWT,
    PublicKey,
    audiences,
    check_claims,
    verify_compact,
)

NOW = 1_700_000_000
LEEWAY = 60
ISSUER = "https://id.example.com"
CLAIMS = {"iss": ISSUER, "sub": "user-1", "aud": "https://api.example.com", "exp": NOW + 300}

Signer = Callable[[bytes], bytes]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(header: dict[str, Any], payload: object, sign: Signer) -> str:
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    return f"{signing_input}.{_b64(sign(signing_input.encode('ascii')))}"


def _es256(key: ECKey) -> Signer:
    def sign(data: bytes) -> bytes:
        private = key.private_key
        assert private is not None
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def _rs256(key: RSAKey) -> Signer:
    def sign(data: bytes) -> bytes:
        private = key.private_key
        assert private is not None
        return private.sign(data, padding.PKCS1v15(), hashes.SHA256())

    return sign


def _hs256(secret: bytes) -> Signer:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


@dataclass(frozen=True)
class Keys:
    """Our signing keys and a resolver that finds their public halves by ``kid``."""

    ec: ECKey
    rsa: RSAKey

    def resolve(self, header: dict[str, Any]) -> PublicKey | None:
        public: dict[str | None, PublicKey] = {
            self.ec.kid: ECKey.import_key(self.ec.as_dict(private=False)),
            self.rsa.kid: RSAKey.import_key(self.rsa.as_dict(private=False)),
        }
        return public.get(header.get("kid"))

    def es256(self, payload: object = CLAIMS, **header: Any) -> str:
        return _compact({"alg": "ES256", "kid": self.ec.kid, **header}, payload, _es256(self.ec))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        ec=ECKey.generate_key("P-256", auto_kid=True),
        rsa=RSAKey.generate_key(2048, auto_kid=True),
    )


# --- verify_compact -------------------------------------------------------------------------


def test_token_signed_with_an_accepted_algorithm_verifies(keys: Keys) -> None:
    verified = verify_compact(keys.es256(typ="at+jwt"), keys.resolve, ["ES256"])

    assert verified.header == {"alg": "ES256", "kid": keys.ec.kid, "typ": "at+jwt"}
    assert verified.claims == CLAIMS


def test_token_serialized_by_joserfc_verifies(keys: Keys) -> None:
    token = jws.serialize_compact(
        {"alg": "RS256", "kid": keys.rsa.kid}, orjson.dumps(CLAIMS), keys.rsa
    )

    assert verify_compact(token, keys.resolve, {"ES256", "RS256"}).claims == CLAIMS


def _alg_none(keys: Keys) -> str:
    return _compact({"alg": "none", "kid": keys.ec.kid}, CLAIMS, lambda data: b"")


def _hmac_with_rsa_public_key(keys: Keys) -> str:
    # Algorithm confusion: the attacker uses our published RSA key as an HMAC secret.
    public_pem = keys.rsa.as_pem(private=False)
    header = {"alg": "HS256", "kid": keys.rsa.kid}
    return _compact(header, CLAIMS, _hs256(public_pem))


def _rs256_where_es256_is_expected(keys: Keys) -> str:
    return _compact({"alg": "RS256", "kid": keys.rsa.kid}, CLAIMS, _rs256(keys.rsa))


def _alg_as_a_list(keys: Keys) -> str:
    return _compact({"alg": ["ES256"], "kid": keys.ec.kid}, CLAIMS, _es256(keys.ec))


def _alg_as_an_object(keys: Keys) -> str:
    return _compact({"alg": {"ES256": 1}, "kid": keys.ec.kid}, CLAIMS, _es256(keys.ec))


def _embedded_jwk(keys: Keys) -> str:
    attacker = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "kid": keys.ec.kid, "jwk": attacker.as_dict(private=False)}
    return _compact(header, CLAIMS, _es256(attacker))


def _jwe_compact(keys: Keys) -> str:
    key = OctKey.generate_key(256)
    return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, orjson.dumps(CLAIMS), key)


def _jws_json(keys: Keys) -> str:
    member: jws.HeaderDict = {"protected": {"alg": "ES256", "kid": keys.ec.kid}}
    return orjson.dumps(jws.serialize_json(member, orjson.dumps(CLAIMS), keys.ec)).decode()


def _too_long(keys: Keys) -> str:
    token = keys.es256({**CLAIMS, "pad": "x" * MAX_TOKEN_LENGTH})
    assert len(token) > MAX_TOKEN_LENGTH
    return token


def _tampered_payload(keys: Keys) -> str:
    header, _, signature = keys.es256().split(".")
    forged = _b64(orjson.dumps({**CLAIMS, "sub": "admin"}))
    return f"{header}.{forged}.{signature}"


def _signed_by_another_key_with_our_kid(keys: Keys) -> str:
    other = ECKey.generate_key("P-256")
    return _compact({"alg": "ES256", "kid": keys.ec.kid}, CLAIMS, _es256(other))


def _unknown_kid(keys: Keys) -> str:
    other = ECKey.generate_key("P-256", auto_kid=True)
    return _compact({"alg": "ES256", "kid": other.kid}, CLAIMS, _es256(other))


def _claims_not_an_object(keys: Keys) -> str:
    return keys.es256(["not", "an", "object"])


def _not_json_header(keys: Keys) -> str:
    return f"{_b64(b'not json')}.{_b64(orjson.dumps(CLAIMS))}.{_b64(b'sig')}"


def _header_not_an_object(header: bytes) -> Callable[[Keys], str]:
    # joserfc only asks whether the decoded header contains "alg": a JSON string or list does.
    return lambda keys: f"{_b64(header)}.{_b64(orjson.dumps(CLAIMS))}.{_b64(b'sig')}"


def _not_ascii(keys: Keys) -> str:
    header, payload, signature = keys.es256().split(".")
    return f"{header}.{payload}\u00e9.{signature}"


REFUSED = [
    pytest.param(_alg_none, ["ES256"], id="alg-none"),
    pytest.param(_alg_none, ["ES256", "none"], id="alg-none-even-if-listed"),
    pytest.param(_hmac_with_rsa_public_key, ["RS256"], id="hs256-with-rsa-public-key"),
    pytest.param(
        _hmac_with_rsa_public_key, ["RS256", "HS256"], id="hs256-with-rsa-public-key-even-if-listed"
    ),
    pytest.param(_rs256_where_es256_is_expected, ["ES256"], id="alg-not-accepted"),
    pytest.param(_alg_as_a_list, frozenset({"ES256"}), id="alg-a-list"),
    pytest.param(_alg_as_an_object, frozenset({"ES256"}), id="alg-an-object"),
    pytest.param(lambda k: k.es256(jku="https://evil.example/jwks"), ["ES256"], id="jku"),
    pytest.param(_embedded_jwk, ["ES256"], id="jwk"),
    pytest.param(lambda k: k.es256(x5u="https://evil.example/cert.pem"), ["ES256"], id="x5u"),
    pytest.param(lambda k: k.es256(x5c=["MIIBszCCAVmgAwIBAgIU"]), ["ES256"], id="x5c"),
    pytest.param(lambda k: k.es256(crit=["exp"], exp=NOW), ["ES256"], id="crit"),
    pytest.param(lambda k: k.es256(crit=[]), ["ES256"], id="crit-empty"),
    pytest.param(_jwe_compact, ["ES256"], id="jwe-compact"),
    pytest.param(_jws_json, ["ES256"], id="jws-json-serialization"),
    pytest.param(_too_long, ["ES256"], id="too-long"),
    pytest.param(_tampered_payload, ["ES256"], id="bad-signature"),
    pytest.param(_signed_by_another_key_with_our_kid, ["ES256"], id="other-key-same-kid"),
    pytest.param(_unknown_kid, ["ES256"], id="unknown-kid"),
    pytest.param(lambda k: k.es256()[:-4], ["ES256"], id="truncated-signature"),
    pytest.param(_claims_not_an_object, ["ES256"], id="claims-not-an-object"),
    pytest.param(_not_json_header, ["ES256"], id="header-not-json"),
    pytest.param(_header_not_an_object(b'"alg"'), ["ES256"], id="header-a-json-string"),
    pytest.param(_header_not_an_object(b'["alg"]'), ["ES256"], id="header-a-json-list"),
    pytest.param(_not_ascii, ["ES256"], id="not-ascii"),
    pytest.param(lambda k: "", ["ES256"], id="empty"),
    pytest.param(lambda k: "..", ["ES256"], id="empty-parts"),
]


@pytest.mark.parametrize(("build", "algorithms"), REFUSED)
def test_unacceptable_token_is_refused(
    keys: Keys, build: Callable[[Keys], str], algorithms: Collection[str]
) -> None:
    token = build(keys)

    with pytest.raises(InvalidJWT):
        verify_compact(token, keys.resolve, algorithms)


def test_over_long_token_is_refused_before_the_key_is_looked_up(keys: Keys) -> None:
    looked_up: list[dict[str, Any]] = []

    def resolve(header: dict[str, Any]) -> PublicKey | None:
        looked_up.append(header)
        return keys.resolve(header)

    with pytest.raises(InvalidJWT, match="too long"):
        verify_compact(_too_long(keys), resolve, ["ES256"])

    assert looked_up == []


def test_refusal_message_never_contains_the_token(keys: Keys) -> None:
    token = _tampered_payload(keys)

    with pytest.raises(InvalidJWT) as caught:
        verify_compact(token, keys.resolve, ["ES256"])

    assert token.split(".")[1] not in str(caught.value)


# --- check_claims ---------------------------------------------------------------------------

ACCEPTED_CLAIMS = [
    pytest.param({"exp": NOW + 300}, {}, id="exp-in-the-future"),
    pytest.param({"exp": NOW - LEEWAY + 1}, {}, id="expired-within-leeway"),
    pytest.param({"exp": NOW + 300, "nbf": NOW + LEEWAY}, {}, id="nbf-within-leeway"),
    pytest.param({"exp": NOW + 300, "iat": NOW + LEEWAY}, {}, id="iat-within-leeway"),
    pytest.param({"exp": NOW + 300.5, "iat": NOW - 0.5}, {}, id="fractional-times"),
    pytest.param({"exp": NOW + 300, "iss": ISSUER}, {"issuer": ISSUER}, id="issuer"),
    pytest.param(
        {"exp": NOW + 300, "aud": "https://api.example.com"},
        {"audience": ["https://api.example.com"]},
        id="aud-string",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": ["https://other.example.com", "https://api.example.com"]},
        {"audience": ["https://api.example.com"]},
        id="aud-list-match",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": "https://api.example.com"},
        {"audience": [ISSUER, "https://api.example.com"]},
        id="aud-any-of-accepted",
    ),
]

REFUSED_CLAIMS = [
    pytest.param({}, {}, id="no-exp"),
    pytest.param({"exp": NOW - LEEWAY - 1}, {}, id="expired-beyond-leeway"),
    pytest.param({"exp": NOW - LEEWAY}, {}, id="expired-at-leeway-edge"),
    pytest.param({"exp": str(NOW + 300)}, {}, id="exp-a-string"),
    pytest.param({"exp": True}, {}, id="exp-a-boolean"),
    pytest.param({"exp": NOW + 300, "nbf": NOW + LEEWAY + 1}, {}, id="nbf-beyond-leeway"),
    pytest.param({"exp": NOW + 300, "nbf": "0"}, {}, id="nbf-a-string"),
    pytest.param({"exp": NOW + 300, "iat": NOW + LEEWAY + 1}, {}, id="iat-beyond-leeway"),
    pytest.param(
        {"exp": NOW + 300, "iss": "https://evil.example"}, {"issuer": ISSUER}, id="wrong-iss"
    ),
    pytest.param({"exp": NOW + 300, "iss": ISSUER + "/"}, {"issuer": ISSUER}, id="iss-slash"),
    pytest.param({"exp": NOW + 300, "iss": ISSUER.upper()}, {"issuer": ISSUER}, id="iss-case"),
    pytest.param({"exp": NOW + 300}, {"issuer": ISSUER}, id="iss-missing"),
    pytest.param(
        {"exp": NOW + 300, "aud": "https://other.example.com"},
        {"audience": ["https://api.example.com"]},
        id="wrong-aud",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": "https://api.example.com/"},
        {"audience": ["https://api.example.com"]},
        id="aud-trailing-slash",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": ["https://api.example.com", 7]},
        {"audience": ["https://api.example.com"]},
        id="aud-list-with-a-number",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": ["https://api.example.com", None]},
        {"audience": ["https://api.example.com"]},
        id="aud-list-with-null",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": [["https://api.example.com"]]},
        {"audience": ["https://api.example.com"]},
        id="aud-nested-list",
    ),
    pytest.param(
        {"exp": NOW + 300, "aud": []}, {"audience": ["https://api.example.com"]}, id="aud-empty"
    ),
    pytest.param({"exp": NOW + 300}, {"audience": ["https://api.example.com"]}, id="aud-missing"),
]


@pytest.mark.parametrize(("claims", "expected"), ACCEPTED_CLAIMS)
def test_acceptable_claims_pass(claims: dict[str, Any], expected: dict[str, Any]) -> None:
    check_claims(claims, now=NOW, leeway=LEEWAY, **expected)


@pytest.mark.parametrize(("claims", "expected"), REFUSED_CLAIMS)
def test_unacceptable_claims_are_refused(claims: dict[str, Any], expected: dict[str, Any]) -> None:
    with pytest.raises(InvalidJWT):
        check_claims(claims, now=NOW, leeway=LEEWAY, **expected)


def test_audiences_lists_a_single_string_audience() -> None:
    assert audiences({"aud": "https://api.example.com"}) == ["https://api.example.com"]
