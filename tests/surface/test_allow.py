"""Allow patterns match domain boundaries exactly, and only verified emails count."""

from __future__ import annotations

import pytest

from idp.surface.allow import AllowList, Principal, parse_pattern

ACME = AllowList(["@acme.com", "pat@partner.example", "@*.corp.example", "client:oac2_abc"])


def person(email: str, verified: bool = True) -> Principal:
    return Principal(email=email, email_verified=verified)


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (person("kim@acme.com"), True),
        (person("kim@ACME.com"), True),
        (person("kim@acme.com."), True),
        (person("kim@acme.com", verified=False), False),
        (person("kim@evilacme.com"), False),
        (person("kim@acme.com.evil.example"), False),
        (person("kim@eng.acme.com"), False),
        (person("pat@partner.example"), True),
        (person("Pat@partner.example"), False),
        (person("pat2@partner.example"), False),
        (person("lee@eng.corp.example"), True),
        (person("lee@a.b.corp.example"), True),
        (person("lee@corp.example"), False),
        (person("lee@evilcorp.example"), False),
        (Principal(client_id="oac2_abc"), True),
        (Principal(client_id="oac2_abcd"), False),
        (Principal(email="not an address", email_verified=True), False),
        (Principal(), False),
    ],
    ids=lambda value: str(value) if isinstance(value, bool) else None,
)
def test_patterns_match_exactly_what_the_product_page_says(
    principal: Principal, allowed: bool
) -> None:
    assert (ACME.allows(principal) is not None) is allowed


@pytest.mark.parametrize(
    "text", ["@", "@*.", "*@acme.com", "@acme.*", "client:", "@gmail", "kim@", "@a@b.com"]
)
def test_malformed_patterns_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(text)


def test_patterns_read_back_normalised() -> None:
    assert [str(p) for p in AllowList(["@ACME.com", "@*.Bücher.example"]).patterns] == [
        "@acme.com",
        "@*.xn--bcher-kva.example",
    ]


def test_an_empty_list_allows_nobody() -> None:
    assert AllowList([]).allows(person("kim@acme.com")) is None
