"""The one normalisation of email addresses, applied before any two addresses are compared.

Every address that is stored, looked up, rate limited or matched against an allow pattern goes
through :func:`normalise` first, so "the same address" means one thing across the service.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_ADDRESS = 254  # octets of a forward path, RFC 5321 section 4.5.3.1.3
MAX_LOCAL_PART = 64  # RFC 5321 section 4.5.3.1.1
MAX_LABEL = 63  # RFC 1035 section 2.3.4

# Label separators that IDNA treats as a full stop (RFC 3490 section 3.1).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")
# A dot-atom of RFC 5322 atext, widened to any non-ASCII character by RFC 6531 section 3.3.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# What a label must look like once in ASCII: letters, digits, inner hyphens (RFC 5321 4.1.2).
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})


def normalise(address: str) -> str:
    """Return the canonical form of an email address, or raise ``ValueError`` saying why not.

    Surrounding whitespace is removed. The local part is kept exactly as given, case included:
    RFC 5321 section 2.4 makes it case-sensitive and only the receiving host may fold it. The
    domain is lowercased, loses a trailing dot and is IDNA-encoded label by label under IDNA
    2008 with UTS #46 non-transitional mapping, as registries and browsers do (``BÜCHER``
    becomes ``xn--bcher-kva``; ``faß`` stays its own domain, ``xn--fa-hia``, never ``fass``).
    Quoted local parts and address literals are refused. The result is its own normal form.
    """
    address = address.strip()
    if len(address) > MAX_ADDRESS:
        raise ValueError("address is too long")
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in address):
        raise ValueError("address contains spaces or control characters")
    if address.count("@") != 1:
        raise ValueError("address must contain exactly one '@'")

    local, _, domain = address.partition("@")
    result = f"{_check_local_part(local)}@{_encode_domain(domain)}"
    if len(result.encode("utf-8")) > MAX_ADDRESS:
        raise ValueError("address is too long")
    return result


def domain_of(address: str) -> str:
    """The normalised domain of an address (ASCII, lowercase), for allow patterns and SSO."""
    return normalise(address).rpartition("@")[2]


def _check_local_part(local: str) -> str:
    if not local:
        raise ValueError("local part is empty")
    if local.startswith('"'):
        raise ValueError("quoted local parts are not accepted")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise ValueError("local part is too long")
    if not _LOCAL_PART.fullmatch(local):
        raise ValueError("local part is not a valid dot-atom")
    return local


def _encode_domain(domain: str) -> str:
    labels = _DOTS.split(domain.lower())
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # a trailing dot names the same domain
    if labels == [""]:
        raise ValueError("domain is empty")
    if len(labels) < 2:
        raise ValueError("domain must contain a dot")
    return ".".join(_encode_label(label) for label in labels)


def _encode_label(label: str) -> str:
    if not label:
        raise ValueError("domain has an empty label")
    if len(label) > MAX_LABEL:
        raise ValueError("domain label is too long")
    if label.isascii() and not label.startswith("xn--"):
        ascii_label = label  # plain LDH labels need no mapping; the check below judges them
    else:
        try:
            ascii_label = idna.encode(label, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError("domain is not a valid internationalised name") from None
    if not _LDH_LABEL.fullmatch(ascii_label):
        raise ValueError("domain label may hold only letters, digits and inner hyphens")
    return ascii_label
