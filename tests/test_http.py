"""The edge: parameters parsed once, client addresses behind proxies, HTTP Basic credentials,
and documents served with an ETag."""

from __future__ import annotations

import base64
import ipaddress

import orjson
import pytest
from starlette.requests import Request
from starlette.types import Message

from idp.client_auth import ASSERTION_TYPE, Presented, presented_credentials
from idp.errors import InvalidClient, InvalidRequest
from idp.http import Document, Network, Params, client_address, etag_matches

PROXIES: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8:1::/48"),
)


def _request(headers: list[tuple[str, str]] | None = None, peer: str = "203.0.113.7") -> Request:
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers or []
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/token",
        "query_string": b"",
        "headers": raw,
        "client": (peer, 51234),
        "server": ("id.example.com", 443),
    }
    return Request(scope)


# --- Params ---------------------------------------------------------------------------------


def test_each_parameter_is_read_once() -> None:
    params = Params.parse([("grant_type", "client_credentials"), ("scope", "mcp:read")])

    assert params.get("grant_type") == "client_credentials"
    assert params.require("scope") == "mcp:read"
    assert params.get("state") is None


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("scope", "a"), ("scope", "b")], id="different-values"),
        pytest.param([("code", "x"), ("code", "x")], id="same-value"),
        pytest.param(
            [("redirect_uri", "https://a"), ("grant_type", "g"), ("redirect_uri", "b")], id="apart"
        ),
    ],
)
def test_repeated_parameter_is_refused_with_invalid_request(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Params.parse(pairs)

    assert caught.value.error == "invalid_request"
    assert pairs[0][0] in caught.value.description


def test_resource_may_be_repeated() -> None:
    params = Params.parse(
        [("resource", "https://api.example.com"), ("resource", "https://mail.example.com")]
    )

    assert params.all("resource") == ("https://api.example.com", "https://mail.example.com")


def test_empty_value_counts_as_absent() -> None:
    params = Params.parse([("state", ""), ("scope", "")])

    assert params.get("state") is None
    assert params.all("scope") == ()
    with pytest.raises(InvalidRequest):
        params.require("state")


def test_empty_value_beside_a_real_one_is_not_a_repetition() -> None:
    params = Params.parse([("state", ""), ("state", "xyz")])

    assert params.get("state") == "xyz"


def test_parsed_parameters_cannot_be_changed() -> None:
    params = Params.parse([("scope", "mcp:read")])

    with pytest.raises(TypeError):
        params.values["scope"] = ("mcp:write",)  # type: ignore[index]


# --- client_address -------------------------------------------------------------------------

ADDRESSES = [
    pytest.param("203.0.113.7", "198.51.100.1", (), "203.0.113.7", id="untrusted-peer"),
    pytest.param("10.0.0.2", "198.51.100.1", (), "10.0.0.2", id="no-proxy-configured"),
    pytest.param("10.0.0.2", None, PROXIES, "10.0.0.2", id="trusted-peer-without-header"),
    pytest.param("10.0.0.2", "198.51.100.1", PROXIES, "198.51.100.1", id="one-proxy"),
    pytest.param("10.0.0.2", "198.51.100.1, 10.0.0.9", PROXIES, "198.51.100.1", id="two-proxies"),
    pytest.param(
        "10.0.0.2", "6.6.6.6, 198.51.100.1", PROXIES, "198.51.100.1", id="forged-left-entry"
    ),
    pytest.param(
        "10.0.0.2", "10.0.0.1, 198.51.100.1", PROXIES, "198.51.100.1", id="forged-proxy-entry"
    ),
    pytest.param("10.0.0.2", "10.0.0.8, 10.0.0.9", PROXIES, "10.0.0.8", id="all-hops-trusted"),
    pytest.param("2001:db8:1::5", "2001:db8:2::7", PROXIES, "2001:db8:2::7", id="ipv6-proxy"),
]


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), ADDRESSES)
def test_client_address_trusts_forwarded_for_only_from_configured_proxies(
    peer: str, forwarded: str | None, trusted: tuple[Network, ...], expected: str
) -> None:
    headers = [] if forwarded is None else [("X-Forwarded-For", forwarded)]

    assert client_address(_request(headers, peer=peer), trusted) == expected


def test_client_address_reads_every_forwarded_for_header_line() -> None:
    # A proxy may add its own X-Forwarded-For line after the one the client sent (HAProxy's
    # "option forwardfor" does); the lines form one list (RFC 9110 section 5.3).
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.1")]

    assert client_address(_request(headers, peer="10.0.0.2"), PROXIES) == "198.51.100.1"


# --- HTTP Basic credentials (RFC 6749 section 2.3.1) ----------------------------------------


def _basic(credentials: bytes | str) -> tuple[str, str]:
    raw = credentials.encode("utf-8") if isinstance(credentials, str) else credentials
    return ("Authorization", "Basic " + base64.b64encode(raw).decode("ascii"))


def _presented(
    headers: list[tuple[str, str]], pairs: list[tuple[str, str]] | None = None
) -> Presented:
    return presented_credentials(_request(headers), Params.parse(pairs or []))


def _assertion(sub: str) -> str:
    def encode(value: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode("ascii")

    return f"{encode({'alg': 'ES256'})}.{encode({'sub': sub})}.c2ln"


def test_basic_credentials_are_read() -> None:
    presented = _presented([_basic("s6BhdRkqt3:gX1fBat3bV")])

    assert presented == Presented("client_secret_basic", "s6BhdRkqt3", "gX1fBat3bV")


@pytest.mark.parametrize(
    ("credentials", "client_id", "secret"),
    [
        pytest.param("my%3Aclient:s%3Acret", "my:client", "s:cret", id="percent-encoded-colon"),
        pytest.param("client+one:a+b", "client one", "a b", id="plus-is-space"),
        pytest.param("client:100%25", "client", "100%", id="percent-encoded-percent"),
        pytest.param("client:a:b", "client", "a:b", id="raw-colon-in-secret"),
        pytest.param("client:", "client", "", id="empty-secret"),
        pytest.param("%C3%A9t%C3%A9:x", "\u00e9t\u00e9", "x", id="utf-8-escapes"),
    ],
)
def test_basic_id_and_secret_are_form_url_decoded(
    credentials: str, client_id: str, secret: str
) -> None:
    presented = _presented([_basic(credentials)])

    assert (presented.client_id, presented.secret) == (client_id, secret)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic not*base64!", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"client:secret").decode()[:-2], id="no-padding"),
        pytest.param(
            "Basic " + base64.urlsafe_b64encode(b"client:s?>?").decode(), id="url-safe-alphabet"
        ),
        pytest.param(_basic("client-without-colon")[1], id="missing-colon"),
        pytest.param(_basic(":secret")[1], id="empty-client-id"),
        pytest.param(_basic(b"client:\xff\xfe")[1], id="not-utf-8"),
    ],
)
def test_malformed_basic_credentials_are_invalid_client_with_a_basic_challenge(
    header: str,
) -> None:
    with pytest.raises(InvalidClient) as caught:
        _presented([("Authorization", header)])

    assert caught.value.status == 401
    assert caught.value.headers()["WWW-Authenticate"].startswith("Basic ")


def test_basic_scheme_name_is_case_insensitive() -> None:
    header = "basic " + base64.b64encode(b"client:secret").decode("ascii")

    assert _presented([("Authorization", header)]).client_id == "client"


def test_basic_client_id_must_match_a_client_id_parameter() -> None:
    with pytest.raises(InvalidClient):
        _presented([_basic("client:secret")], [("client_id", "other")])


@pytest.mark.parametrize(
    ("headers", "pairs"),
    [
        pytest.param(
            [_basic("client:secret")],
            [("client_id", "client"), ("client_secret", "secret")],
            id="basic-and-post",
        ),
        pytest.param(
            [_basic("client:secret")],
            [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", _assertion("client"))],
            id="basic-and-assertion",
        ),
        pytest.param(
            [],
            [
                ("client_id", "client"),
                ("client_secret", "secret"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", _assertion("client")),
            ],
            id="post-and-assertion",
        ),
    ],
)
def test_two_authentication_methods_at_once_are_invalid_request(
    headers: list[tuple[str, str]], pairs: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _presented(headers, pairs)

    assert caught.value.error == "invalid_request"


def test_client_id_alone_presents_a_public_client() -> None:
    assert _presented([], [("client_id", "public-app")]) == Presented("none", "public-app")


def test_no_credentials_and_no_client_id_is_invalid_client() -> None:
    with pytest.raises(InvalidClient):
        _presented([])


# --- Documents ------------------------------------------------------------------------------

ETAG = '"0123456789abcdef0123456789abcdef"'


@pytest.mark.parametrize(
    ("if_none_match", "matches"),
    [
        (ETAG, True),
        (f'"other", {ETAG}', True),
        (f"W/{ETAG}", True),
        ("*", True),
        (' "other" , * ', True),
        ('"other"', False),
        (ETAG.strip('"'), False),
        (f"{ETAG}x", False),
        ("", False),
    ],
    ids=["same", "listed", "weak", "star", "star-listed", "other", "unquoted", "longer", "empty"],
)
def test_if_none_match_names_an_etag_listed_weakly_or_by_a_star(
    if_none_match: str, matches: bool
) -> None:
    assert etag_matches(if_none_match, ETAG) is matches


async def answer(document: Document, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("a document reads no body")

    await document({"type": "http", "method": "GET", "headers": headers}, receive, send)
    return sent


async def test_a_document_is_sent_whole_with_its_validators() -> None:
    document = Document.of(b'{"a":1}', "application/json", 300)

    start, body = await answer(document, [(b"host", b"idp.test")])

    assert start["status"] == 200
    assert dict(start["headers"]) == {
        b"content-type": b"application/json",
        b"content-length": b"7",
        b"etag": document.etag.encode(),
        b"cache-control": b"public, max-age=300",
    }
    assert body == {"type": "http.response.body", "body": b'{"a":1}'}
    assert document.etag == Document.of(b'{"a":1}', "application/json", 60).etag


async def test_a_client_holding_the_document_gets_304_with_validators_and_no_body() -> None:
    document = Document.of(b'{"a":1}', "application/json", 300)
    fields = [(b"if-none-match", b'"other"'), (b"if-none-match", document.etag.encode())]

    start, body = await answer(document, fields)

    assert start["status"] == 304
    assert dict(start["headers"]) == {
        b"etag": document.etag.encode(),
        b"cache-control": b"public, max-age=300",
    }
    assert body["body"] == b""


async def test_each_answer_gets_message_objects_of_its_own() -> None:
    document = Document.of(b"{}", "application/json", 300)

    first, second = await answer(document, []), await answer(document, [])
    first[0]["headers"].append((b"x-added", b"by a layer outside"))

    assert (b"x-added", b"by a layer outside") not in second[0]["headers"]
    assert (b"x-added", b"by a layer outside") not in document.headers
