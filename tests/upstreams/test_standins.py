"""The upstream stand-ins, driven by plain httpx as a relying party would drive the real ones.

Each flow goes authorize → code → token, then verifies the ID token with joserfc against the
key set the persona publishes, so the stand-ins are held to the protocol the idp tests rely on.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.upstreams import (
    APPLE_AUDIENCE,
    MSA_TENANT,
    AppleDeveloperKey,
    GitHubAccount,
    GitHubEmail,
    OidcAccount,
    Tamper,
    Upstreams,
    form_post_fields,
    google_account,
    personal_account,
    relay_account,
    s256,
    serve_upstreams,
    work_account,
)

NOW = 1_800_000_000
CALLBACK = "http://127.0.0.1:9/auth/callback"
TENANT = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


class FakeClock:
    """The idp tests' clock: fixed until a test moves it."""

    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def upstreams(clock: FakeClock) -> Iterator[Upstreams]:
    with serve_upstreams(clock=clock) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def redirected(response: httpx.Response) -> dict[str, str]:
    """The parameters of an authorization response delivered by redirect."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK)
    return dict(parse_qsl(urlsplit(location).query))


def verified_claims(http: httpx.Client, issuer: str, id_token: str) -> dict[str, Any]:
    """The ID token's claims after checking its signature against the discovered key set."""
    metadata = http.get(issuer.rstrip("/") + "/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(http.get(metadata["jwks_uri"]).json())
    return dict(jwt.decode(id_token, keys, algorithms=["RS256"]).claims)


def oidc_sign_in(
    http: httpx.Client, authorize_url: str, token_url: str, *, scope: str = "openid email profile"
) -> tuple[dict[str, Any], str]:
    """Run the code flow with PKCE, nonce and client_secret_basic; the token response and nonce."""
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(16)
    query = {
        "client_id": "rp",
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": scope,
        "state": "st-1",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = redirected(http.get(authorize_url, params=query))
    assert answer["state"] == "st-1"

    form = {
        "grant_type": "authorization_code",
        "code": answer["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    response = http.post(token_url, data=form, auth=("rp", "rp-secret"))
    assert response.status_code == 200, response.text
    return response.json(), nonce


# Google


def test_google_code_flow_yields_a_verified_id_token_and_matching_userinfo(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    google = upstreams.google
    google.add_client("rp", "rp-secret", [CALLBACK])
    google.sign_in_as(google_account("1001", "ada@acme.test", name="Ada", hd="acme.test"))
    metadata = http.get(f"{upstreams.base_url}/google/.well-known/openid-configuration").json()
    assert metadata["issuer"] == f"{upstreams.base_url}/google"
    assert metadata["code_challenge_methods_supported"] == ["plain", "S256"]

    tokens, nonce = oidc_sign_in(
        http, metadata["authorization_endpoint"], metadata["token_endpoint"]
    )
    claims = verified_claims(http, google.issuer, tokens["id_token"])
    assert claims["iss"] == google.issuer and claims["aud"] == "rp" and claims["nonce"] == nonce
    assert claims["email_verified"] is True and claims["hd"] == "acme.test"
    assert claims["iat"] == NOW and claims["exp"] == NOW + 3600
    assert google.requests[-1].auth_methods == ("client_secret_basic",)
    assert google.requests[-1].code_verifier is not None

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(metadata["userinfo_endpoint"], headers=bearer).json()["sub"] == "1001"
    google.userinfo_sub_override = "someone-else"
    assert http.get(metadata["userinfo_endpoint"], headers=bearer).json()["sub"] == "someone-else"


def test_google_may_spell_its_issuer_without_the_scheme(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    google = upstreams.google
    google.add_client("rp", "rp-secret", [CALLBACK])
    google.sign_in_as(google_account("1001", "ada@gmail.test"))
    google.schemeless_iss = True

    base = f"{upstreams.base_url}/google"
    tokens, _ = oidc_sign_in(http, f"{base}/o/oauth2/v2/auth", f"{base}/token")
    claims = verified_claims(http, google.issuer, tokens["id_token"])
    assert claims["iss"] == google.issuer.removeprefix("http://")
    assert "hd" not in claims


# Codes and PKCE, on a generic enterprise provider


def test_a_code_is_single_use_bound_to_pkce_and_expires_after_ten_minutes(
    upstreams: Upstreams, http: httpx.Client, clock: FakeClock
) -> None:
    okta = upstreams.oidc("okta")
    okta.add_client("rp", "rp-secret", [CALLBACK])
    okta.sign_in_as(OidcAccount("u1", {"email": "u1@acme.test", "email_verified": True}))
    verifier, challenge = pkce()

    def code(**extra: str) -> str:
        query = {"client_id": "rp", "redirect_uri": CALLBACK, "response_type": "code"}
        query |= {"scope": "openid", "state": "s", **extra}
        return redirected(http.get(f"{okta.issuer}/authorize", params=query))["code"]

    def redeem(code: str, **extra: str) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        return http.post(f"{okta.issuer}/token", data=form | extra, auth=("rp", "rp-secret"))

    s256_code = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert redeem(code(**s256_code)).json()["error"] == "invalid_grant"  # verifier missing
    assert redeem(code(**s256_code), code_verifier=pkce()[0]).status_code == 400
    assert redeem(code(), code_verifier=verifier).json()["error"] == "invalid_grant"

    issued = code(**s256_code)
    assert redeem(issued, code_verifier=verifier).status_code == 200
    assert redeem(issued, code_verifier=verifier).json()["error"] == "invalid_grant"
    late = code()
    clock.now += 601
    assert redeem(late).json()["error"] == "invalid_grant"


EXPECTED_DAMAGE = {
    Tamper.WRONG_AUDIENCE: lambda claims, nonce: claims["aud"] != "rp",
    Tamper.WRONG_ISSUER: lambda claims, nonce: claims["iss"] == "https://attacker.example",
    Tamper.WRONG_NONCE: lambda claims, nonce: claims["nonce"] != nonce,
    Tamper.EXPIRED: lambda claims, nonce: claims["exp"] < NOW,
}


@pytest.mark.parametrize("tamper", list(Tamper), ids=lambda tamper: tamper.name.lower())
def test_each_tamper_knob_spoils_the_next_id_token_only(
    upstreams: Upstreams, http: httpx.Client, tamper: Tamper
) -> None:
    okta = upstreams.oidc("okta")
    okta.add_client("rp", "rp-secret", [CALLBACK])
    okta.sign_in_as(OidcAccount("u1", {"email": "u1@acme.test"}))
    endpoints = (f"{okta.issuer}/authorize", f"{okta.issuer}/token")

    okta.tamper_next(tamper)
    spoilt, nonce = oidc_sign_in(http, *endpoints)
    if tamper in EXPECTED_DAMAGE:
        assert EXPECTED_DAMAGE[tamper](
            verified_claims(http, okta.issuer, spoilt["id_token"]), nonce
        )
    else:
        with pytest.raises((JoseError, ValueError)):
            verified_claims(http, okta.issuer, spoilt["id_token"])

    clean, nonce = oidc_sign_in(http, *endpoints)
    assert verified_claims(http, okta.issuer, clean["id_token"])["nonce"] == nonce


def test_a_rotated_key_signs_while_the_old_one_stays_published(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    okta = upstreams.oidc("okta")
    okta.add_client("rp", "rp-secret", [CALLBACK])
    okta.sign_in_as(OidcAccount("u1"))
    old_kid = okta.keys.current.kid

    new_kid = okta.rotate_key()
    tokens, _ = oidc_sign_in(http, f"{okta.issuer}/authorize", f"{okta.issuer}/token")
    header = jwt.decode(tokens["id_token"], okta.keys.current.key).header
    published = [key["kid"] for key in http.get(f"{okta.issuer}/jwks").json()["keys"]]
    assert header["kid"] == new_kid and published == [old_kid, new_kid]


def test_an_auth0_issuer_keeps_its_slash_and_the_response_can_name_an_issuer(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    auth0 = upstreams.oidc("auth0", trailing_slash=True)
    auth0.add_client("rp", "rp-secret", [CALLBACK])
    auth0.sign_in_as(OidcAccount("auth0|1"))
    auth0.send_iss = True
    metadata = http.get(f"{upstreams.base_url}/oidc/auth0/.well-known/openid-configuration").json()
    assert metadata["issuer"] == f"{upstreams.base_url}/oidc/auth0/"
    assert metadata["authorization_response_iss_parameter_supported"] is True

    query = {"client_id": "rp", "redirect_uri": CALLBACK, "response_type": "code"}
    query |= {"scope": "openid", "state": "s"}
    assert (
        redirected(http.get(metadata["authorization_endpoint"], params=query))["iss"]
        == (metadata["issuer"])
    )
    auth0.iss_override = upstreams.google.issuer  # a mix-up
    auth0.deny_next()
    answer = redirected(http.get(metadata["authorization_endpoint"], params=query))
    assert answer == {"error": "access_denied", "error_description": "the user declined"} | {
        "state": "s",
        "iss": upstreams.google.issuer,
    }
    tokens, _ = oidc_sign_in(http, metadata["authorization_endpoint"], metadata["token_endpoint"])
    assert verified_claims(http, auth0.issuer, tokens["id_token"])["iss"] == auth0.issuer


def test_an_unknown_client_or_redirect_uri_gets_a_page_and_issuer_paths_may_nest(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    okta = upstreams.oidc("okta")
    okta.add_client("rp", "rp-secret", [CALLBACK])
    query = {"client_id": "rp", "redirect_uri": CALLBACK, "response_type": "code", "state": "s"}
    for bad in ({"client_id": "nobody"}, {"redirect_uri": CALLBACK + "/x"}):
        assert http.get(f"{okta.issuer}/authorize", params=query | bad).status_code == 400
    assert http.get(f"{upstreams.base_url}/oidc/nobody/authorize").status_code == 404
    realm = upstreams.oidc("keycloak/realms/acme")
    discovered = http.get(f"{realm.issuer}/.well-known/openid-configuration").json()
    assert discovered["issuer"] == f"{upstreams.base_url}/oidc/keycloak/realms/acme"


# Microsoft


def test_microsoft_common_publishes_the_tenantid_template_and_tokens_the_concrete_issuer(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    microsoft = upstreams.microsoft
    microsoft.add_client("rp", "rp-secret", [CALLBACK])
    user = work_account(TENANT, "ada@contoso.test", xms_edov="1")
    microsoft.sign_in_as(user)
    authority = f"{upstreams.base_url}/microsoft"
    common = http.get(f"{authority}/common/v2.0/.well-known/openid-configuration").json()
    assert common["issuer"] == f"{authority}/{{tenantid}}/v2.0"
    assert "code_challenge_methods_supported" not in common
    keys = http.get(common["jwks_uri"]).json()["keys"]
    assert {key["issuer"] for key in keys} == {common["issuer"]}
    tenant = http.get(f"{authority}/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert tenant["issuer"] == f"{authority}/{TENANT}/v2.0"

    tokens, _ = oidc_sign_in(http, common["authorization_endpoint"], common["token_endpoint"])
    claims = verified_claims(http, tenant["issuer"], tokens["id_token"])
    assert claims["iss"] == tenant["issuer"] and claims["tid"] == TENANT
    assert claims["oid"] == user.oid and claims["xms_edov"] == "1"
    assert claims["sub"] != user.oid


def test_microsoft_enforces_pkce_and_tenant_authorities(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    microsoft = upstreams.microsoft
    microsoft.add_client("rp", "rp-secret", [CALLBACK])
    microsoft.sign_in_as(personal_account("bob@outlook.test"))
    authority = f"{upstreams.base_url}/microsoft"
    query = {"client_id": "rp", "redirect_uri": CALLBACK, "response_type": "code"}
    query |= {"scope": "openid email", "state": "s", "code_challenge": pkce()[1]}

    refused = redirected(http.get(f"{authority}/organizations/oauth2/v2.0/authorize", params=query))
    assert refused["error"] == "access_denied"
    code = redirected(http.get(f"{authority}/consumers/oauth2/v2.0/authorize", params=query))
    form = {"grant_type": "authorization_code", "code": code["code"], "redirect_uri": CALLBACK}
    form |= {"client_id": "rp", "client_secret": "rp-secret"}
    answer = http.post(f"{authority}/consumers/oauth2/v2.0/token", data=form)
    assert answer.json()["error"] == "invalid_grant"
    assert microsoft.requests[-1].auth_methods == ("client_secret_post",)
    consumers = http.get(f"{authority}/consumers/v2.0/.well-known/openid-configuration").json()
    assert consumers["issuer"] == microsoft.issuer_for(MSA_TENANT)
    by_domain = f"{authority}/contoso.test/v2.0/.well-known/openid-configuration"
    assert http.get(by_domain).status_code == 400
    microsoft.add_domain("contoso.test", TENANT)
    assert http.get(by_domain).json()["issuer"] == microsoft.issuer_for(TENANT)


# Apple


def test_apple_posts_the_user_only_on_the_first_authorization(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    apple = upstreams.apple
    developer_key = apple.add_service("com.example.web", [CALLBACK])
    account = relay_account("Ada", "Lovelace")
    apple.sign_in_as(account)
    query = {"client_id": "com.example.web", "redirect_uri": CALLBACK, "response_type": "code"}
    query |= {"scope": "name email", "state": "s", "nonce": "n-1"}
    authorize = f"{upstreams.base_url}/apple/auth/authorize"
    assert http.get(authorize, params=query).status_code == 400  # form_post is required

    first = http.get(authorize, params=query | {"response_mode": "form_post"})
    action, fields = form_post_fields(first.text)
    assert first.status_code == 200 and action == CALLBACK and fields["state"] == "s"
    assert json.loads(fields["user"]) == {
        "name": {"firstName": "Ada", "lastName": "Lovelace"},
        "email": account.email,
    }
    _, again = form_post_fields(
        http.get(authorize, params=query | {"response_mode": "form_post"}).text
    )
    assert "user" not in again

    secret = developer_key.client_secret("com.example.web", NOW)
    form = {"grant_type": "authorization_code", "code": fields["code"], "redirect_uri": CALLBACK}
    form |= {"client_id": "com.example.web", "client_secret": secret}
    tokens = http.post(f"{upstreams.base_url}/apple/auth/token", data=form).json()
    claims = verified_claims(http, apple.issuer, tokens["id_token"])
    assert claims["email_verified"] == "true" and claims["is_private_email"] == "true"
    assert claims["email"].endswith("@privaterelay.appleid.com") and claims["nonce"] == "n-1"


def _apple_secrets(key: AppleDeveloperKey) -> dict[str, str]:
    other = AppleDeveloperKey.generate(key.team_id, key.key_id)

    def signed(header: dict[str, Any], **changes: Any) -> str:
        claims = {"iss": key.team_id, "iat": NOW, "exp": NOW + 3600, "aud": APPLE_AUDIENCE}
        claims |= {"sub": "com.example.web", **changes}
        return jwt.encode(header, claims, key.private_key)

    header = {"alg": "ES256", "kid": key.key_id}
    return {
        "wrong_audience": signed(header, aud="http://127.0.0.1/apple"),
        "wrong_team": signed(header, iss="OTHERTEAM1"),
        "wrong_kid": signed({"alg": "ES256", "kid": "OTHERKEY01"}),
        "wrong_key": other.client_secret("com.example.web", NOW),
        "over_six_months": signed(header, exp=NOW + 15_777_001),
        "expired": key.client_secret("com.example.web", NOW - 7200, lifetime=3600),
    }


@pytest.mark.parametrize(
    "case",
    ["wrong_audience", "wrong_team", "wrong_kid", "wrong_key", "over_six_months", "expired"],
)
def test_apple_refuses_a_client_secret_that_breaks_its_rules(
    upstreams: Upstreams, http: httpx.Client, case: str
) -> None:
    apple = upstreams.apple
    key = apple.add_service("com.example.web", [CALLBACK])
    apple.sign_in_as(relay_account())
    query = {"client_id": "com.example.web", "redirect_uri": CALLBACK, "response_type": "code"}
    code = redirected(http.get(f"{apple.base_url}/auth/authorize", params=query | {"state": "s"}))[
        "code"
    ]

    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    form |= {"client_id": "com.example.web", "client_secret": _apple_secrets(key)[case]}
    answer = http.post(f"{apple.base_url}/auth/token", data=form)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_client")


# GitHub


def test_github_exchanges_a_code_and_serves_user_and_emails(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    github = upstreams.github
    github.add_client("gh-rp", "gh-secret", [CALLBACK])
    github.sign_in_as(
        GitHubAccount(
            583231,
            "octocat",
            "The Octocat",
            [GitHubEmail("octo@github.test", primary=True, verified=True, visibility="private")],
        )
    )
    verifier, challenge = pkce()
    query = {"client_id": "gh-rp", "redirect_uri": CALLBACK, "scope": "read:user user:email"}
    query |= {"state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    code = redirected(http.get(f"{github.web_url}/login/oauth/authorize", params=query))["code"]

    token_url = f"{github.web_url}/login/oauth/access_token"
    form = {"client_id": "gh-rp", "client_secret": "gh-secret", "code": code}
    answer = http.post(token_url, data=form | {"code_verifier": verifier})
    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    token = dict(parse_qsl(answer.text))
    assert token["token_type"] == "bearer" and token["scope"] == "read:user,user:email"
    assert token["access_token"].startswith("gho_")
    again = http.post(token_url, data=form, headers={"Accept": "application/json"})
    assert (again.status_code, again.json()["error"]) == (200, "bad_verification_code")

    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert http.get(f"{github.api_url}/user", headers=auth | {"User-Agent": ""}).status_code == 403
    user = http.get(f"{github.api_url}/user", headers=auth).json()
    assert (user["id"], user["login"], user["email"]) == (583231, "octocat", None)
    emails = http.get(f"{github.api_url}/user/emails", headers=auth).json()
    assert emails == [
        {"email": "octo@github.test", "primary": True, "verified": True, "visibility": "private"}
    ]


def test_github_reports_token_errors_with_status_200(
    upstreams: Upstreams, http: httpx.Client
) -> None:
    github = upstreams.github
    github.add_client("gh-rp", "gh-secret", [CALLBACK])
    github.sign_in_as(GitHubAccount(1, "octocat"))
    query = {"client_id": "gh-rp", "state": "s"}
    token_url = f"{github.web_url}/login/oauth/access_token"

    def exchange(**changes: str) -> str:
        code = redirected(http.get(f"{github.web_url}/login/oauth/authorize", params=query))
        form = {"client_id": "gh-rp", "client_secret": "gh-secret", "code": code["code"]}
        answer = http.post(token_url, data=form | changes)
        assert answer.status_code == 200
        return dict(parse_qsl(answer.text)).get("error", "")

    assert exchange(client_secret="wrong") == "incorrect_client_credentials"
    assert exchange(redirect_uri=CALLBACK + "/other") == "redirect_uri_mismatch"
    assert exchange(code_verifier=pkce()[0]) != ""
    assert exchange() == ""
    access = github.requests[-1]
    assert access.client_secret == "gh-secret" and access.auth_methods == ("client_secret_post",)
