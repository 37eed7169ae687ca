"""Parsing an SSO connection's fields: one small check per field, and the provider rules."""

from __future__ import annotations

from typing import Any

import pytest

from idp.errors import InvalidRequest
from idp.sso_fields import (
    ConnectionFields,
    azure_tenant,
    check_provider_rules,
    normalise_domain,
    parse,
    printable,
)

TENANT = "3f6c2a1e-8b4d-4c7a-9e21-5d0b7a6f4c13"
VALID: dict[str, Any] = {
    "name": " Acme Okta ",
    "provider": "okta",
    "auth_method": "direct_oidc",
    "oidc_issuer": "https://acme.okta.com",
    "oidc_client_id": "client-abc",
    "oidc_client_secret": " secret with spaces ",
    "domains": ["ACME.com", "acme.org", "acme.com."],
    "enforce_sso": True,
    "enabled": False,
}


def test_a_valid_body_parses_into_normalised_fields() -> None:
    fields = parse(VALID)

    assert fields == ConnectionFields(
        name="Acme Okta",
        provider="okta",
        auth_method="direct_oidc",
        oidc_issuer="https://acme.okta.com",
        oidc_client_id="client-abc",
        oidc_client_secret=" secret with spaces ",
        domains=("acme.com", "acme.org"),
        enforce_sso=True,
        enabled=False,
    )
    assert fields.missing() == []


def test_the_secret_never_shows_in_the_repr() -> None:
    assert "secret with spaces" not in repr(parse(VALID))


def test_absent_fields_stay_none_and_are_neither_given_nor_required_twice() -> None:
    fields = parse({"name": "Renamed", "enabled": True})

    assert fields.given() == {"name": "Renamed", "enabled": True}
    assert fields.missing() == [
        "provider",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_client_secret",
        "domains",
    ]


def test_what_a_response_carries_may_come_back_and_is_ignored() -> None:
    echoed = {"id": "sso_1", "org_id": "org", "oidc_client_secret_set": True, "created_at": 1}

    assert parse({**echoed, "updated_at": 2}) == ConnectionFields()


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"name": None}, "name must be a non-empty string"),
        ({"name": " "}, "name must be a non-empty string"),
        ({"name": "a\nb"}, "name must not contain control characters"),
        ({"name": "a\x7fb"}, "name must not contain control characters"),
        ({"name": "x" * 201}, "name must be at most 200 characters"),
        ({"provider": "saml_idp"}, "provider must be one of: auth0, azure_ad, google_workspace"),
        ({"provider": ["okta"]}, "provider must be one of"),
        ({"auth_method": "saml"}, "auth_method must be one of: direct_oidc"),
        ({"oidc_issuer": "not a url"}, "oidc_issuer must be a URL without spaces"),
        ({"oidc_issuer": "https://idp.example/?tenant=1"}, "oidc_issuer must be a URL without"),
        ({"oidc_issuer": "https://idp.example/#x"}, "oidc_issuer must be a URL without"),
        ({"oidc_issuer": "https://idp.exämple"}, "oidc_issuer must be a URL without"),
        ({"oidc_issuer": "ftp://idp.example"}, "oidc_issuer must be an https URL"),
        ({"oidc_issuer": "https:///path"}, "oidc_issuer must be an https URL"),
        ({"oidc_issuer": "https://me@idp.example"}, "oidc_issuer must be an https URL"),
        ({"oidc_issuer": "https://idp.example:99999"}, "oidc_issuer has an invalid port"),
        ({"oidc_issuer": "https://x/" + "a" * 2048}, "oidc_issuer must be at most 2048"),
        ({"oidc_client_id": 42}, "oidc_client_id must be a non-empty string"),
        ({"oidc_client_secret": ""}, "oidc_client_secret must be a non-empty string"),
        ({"oidc_client_secret": "a\x00b"}, "oidc_client_secret must not contain control"),
        ({"domains": []}, "domains must be a non-empty list of email domains"),
        ({"domains": "acme.com"}, "domains must be a non-empty list of email domains"),
        ({"domains": [42]}, "domains[0] must be a string"),
        ({"domains": ["acme.com", "gmail.com"]}, "domains[1]: gmail.com is a consumer mail domain"),
        ({"domains": ["Outlook.COM"]}, "domains[0]: outlook.com is a consumer mail domain"),
        ({"domains": ["proton.me"]}, "domains[0]: proton.me is a consumer mail domain"),
        ({"domains": ["eu.yahoo.com"]}, "domains[0]: eu.yahoo.com is a consumer mail domain"),
        ({"domains": ["pat@acme.com"]}, "domains[0]: must be a domain, not an address"),
        ({"domains": ["localhost"]}, "domains[0]: domain must contain a dot"),
        ({"domains": ["printer.local"]}, "domains[0]: is not a public domain"),
        ({"domains": ["10.0.0.1"]}, "domains[0]: is not a public domain"),
        ({"domains": ["*.acme.com"]}, "domains[0]: domain label may hold only letters"),
        ({"domains": ["acme..com"]}, "domains[0]: domain has an empty label"),
        ({"domains": ["ac me.com"]}, "domains[0]: address contains spaces"),
        ({"domains": [f"d{n}.acme.com" for n in range(101)]}, "domains may hold at most 100"),
        ({"enforce_sso": "yes"}, "enforce_sso must be true or false"),
        ({"enforce_sso": None}, "enforce_sso must be true or false"),
        ({"enabled": 1}, "enabled must be true or false"),
        ({"enforceSso": True}, "unknown field 'enforceSso'"),
        ({'a"\u00e9': True}, "unknown field 'a??'"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else "",
)
def test_a_bad_field_is_an_invalid_request_that_names_it_and_why(
    change: dict[str, Any], description: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse({**VALID, **change})

    assert refused.value.description.startswith(description)


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("acme.com", "acme.com"),
        ("  ACME.Com. ", "acme.com"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("gmail.com.evil.example", "gmail.com.evil.example"),
        ("notgmail.com", "notgmail.com"),
    ],
)
def test_domains_are_normalised_as_email_domains_are(given: str, normalised: str) -> None:
    assert normalise_domain(given) == normalised


@pytest.mark.parametrize(
    ("issuer", "tenant"),
    [
        (f"https://login.microsoftonline.com/{TENANT}/v2.0", TENANT),
        (f"https://login.microsoftonline.com/{TENANT.upper()}/v2.0", TENANT),
        ("https://login.microsoftonline.com/common/v2.0", None),
        ("https://login.microsoftonline.com/{tenantid}/v2.0", None),
        (f"https://login.microsoftonline.com/{TENANT}", None),
        (f"https://login.microsoftonline.com/{TENANT}/v2.0/", None),
        (f"https://sts.windows.net/{TENANT}/", None),
    ],
)
def test_an_entra_issuer_names_its_tenant_only_in_the_v2_form(
    issuer: str, tenant: str | None
) -> None:
    assert azure_tenant(issuer) == tenant


def test_other_providers_have_no_tenant_rule() -> None:
    check_provider_rules("okta", "https://login.microsoftonline.com/common/v2.0", ["acme.com"])


def test_a_google_workspace_connection_without_domains_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="hd values"):
        check_provider_rules("google_workspace", "https://accounts.google.com", [])


def test_a_description_keeps_to_printable_ascii_and_a_bounded_length() -> None:
    assert printable('naïve "quote" \\ \x00') == "na?ve ?quote? ? ?"
    assert len(printable("x" * 1000)) == 300
