"""The one normalisation of email addresses: what it folds, what it keeps, what it refuses."""

from __future__ import annotations

import re

import pytest

from idp.emails import domain_of, normalise

NORMALISED = [
    ("plain", "person@example.com", "person@example.com"),
    ("domain case is folded", "person@Example.COM", "person@example.com"),
    ("local part case is kept", "Person.Name@example.com", "Person.Name@example.com"),
    ("surrounding whitespace is trimmed", " \tperson@example.com\r\n", "person@example.com"),
    ("trailing dot of the domain is dropped", "person@example.com.", "person@example.com"),
    ("unicode domain becomes punycode", "person@BÜCHER.example", "person@xn--bcher-kva.example"),
    ("punycode domain is kept", "person@xn--bcher-kva.example", "person@xn--bcher-kva.example"),
    (
        "ideographic full stop separates labels",
        "person@bücher\u3002example",
        "person@xn--bcher-kva.example",
    ),
    (
        "sharp s stays its own domain (IDNA 2008)",
        "person@straße.example",
        "person@xn--strae-oqa.example",
    ),
    ("unicode local part is kept", "José@example.com", "José@example.com"),
    (
        "atext specials are kept",
        "a+tag!#$%&'*/=?^_`{|}~-@example.com",
        "a+tag!#$%&'*/=?^_`{|}~-@example.com",
    ),
    ("subdomains and digits", "x@mail.sub-1.example.org", "x@mail.sub-1.example.org"),
]

UNICODE_LABEL = "äöüéèêëìíîïñòóôõ"  # 16 characters, 23 once punycode-encoded
LONGEST_ASCII = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"

REFUSED = [
    ("empty", "", "exactly one '@'"),
    ("only whitespace", "   ", "exactly one '@'"),
    ("no at sign", "person.example.com", "exactly one '@'"),
    ("two at signs", "a@b@example.com", "exactly one '@'"),
    ("empty local part", "@example.com", "local part is empty"),
    ("empty domain", "person@", "domain is empty"),
    ("domain only a dot", "person@.", "domain is empty"),
    ("domain without a dot", "person@localhost", "must contain a dot"),
    ("empty label", "person@example..com", "empty label"),
    ("leading dot in domain", "person@.example.com", "empty label"),
    ("inner space", "per son@example.com", "spaces or control"),
    ("space before the domain", "person@ example.com", "spaces or control"),
    ("header injection", "person@example.com\nBcc: x@evil.example", "spaces or control"),
    ("NUL", "person\x00@example.com", "spaces or control"),
    ("zero-width joiner", "person@exa\u200dmple.com", "spaces or control"),
    ("quoted local part", '"person"@example.com', "quoted"),
    ("quoted local part with an at sign", '"a@b"@example.com', "exactly one '@'"),
    ("comma turns one address into two", "evil,person@example.com", "dot-atom"),
    ("angle brackets", "<person@example.com>", "dot-atom"),
    ("leading dot in local part", ".person@example.com", "dot-atom"),
    ("double dot in local part", "per..son@example.com", "dot-atom"),
    ("address literal", "person@[192.0.2.1]", "letters, digits"),
    ("underscore in domain", "person@ex_ample.com", "letters, digits"),
    ("leading hyphen in label", "person@-example.com", "letters, digits"),
    (
        "fullwidth solidus is not a domain character",
        "person@evil\uff0fexample.com",
        "not a valid internationalised name",
    ),
    ("malformed punycode", "person@xn--zzzz9.example", "internationalised"),
    ("label over 63 characters", "person@" + "a" * 64 + ".com", "label is too long"),
    ("local part over 64 octets", "a" * 65 + "@example.com", "local part is too long"),
    ("address over 254 characters", LONGEST_ASCII[:-4] + "d.com", "address is too long"),
    (
        "unicode domain past 254 once encoded",
        "person@" + ".".join([UNICODE_LABEL] * 11) + ".example",
        "address is too long",
    ),
]


@pytest.mark.parametrize(
    ("given", "expected"),
    [case[1:] for case in NORMALISED],
    ids=[case[0] for case in NORMALISED],
)
def test_addresses_are_normalised(given: str, expected: str) -> None:
    assert normalise(given) == expected


@pytest.mark.parametrize(("given", "expected"), [case[1:] for case in NORMALISED])
def test_normal_form_is_its_own_normal_form(given: str, expected: str) -> None:
    assert normalise(normalise(given)) == normalise(given)


@pytest.mark.parametrize(
    ("given", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_malformed_addresses_are_refused_with_a_reason(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        normalise(given)


def test_an_address_of_exactly_254_octets_is_accepted() -> None:
    assert len(LONGEST_ASCII) == 254
    assert normalise(LONGEST_ASCII) == LONGEST_ASCII


def test_length_is_counted_after_encoding() -> None:
    address = "person@" + ".".join([UNICODE_LABEL] * 10) + ".example"

    assert len(address) < 254
    assert len(normalise(address)) == 254


def test_local_parts_differing_in_case_stay_different_addresses() -> None:
    assert normalise("Person@example.com") != normalise("person@EXAMPLE.com")


def test_domain_of_returns_the_normalised_domain() -> None:
    assert domain_of(" person@BÜCHER.Example. ") == "xn--bcher-kva.example"


def test_domain_of_refuses_what_normalise_refuses() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        domain_of("no-at-sign.example.com")
