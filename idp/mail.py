"""Outgoing mail: a narrow :class:`Mailer` interface, an SMTP sender and a folder outbox.

Messages carry sign-in links, so neither a body nor SMTP credentials ever reach a log line or
an error message; logs say only where a message went.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from idp.config import ConfigError, Settings
from idp.emails import normalise

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 10.0  # seconds for connecting and for each SMTP reply
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_STARTTLS = {"auto": None, "no": False, "require": True}


class MailError(Exception):
    """A message could not be sent; the text is safe to log (no credentials, no body)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One email to one recipient: a plain-text body and, optionally, an HTML alternative."""

    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer(Protocol):
    """Delivers messages; raises :class:`MailError` when a message cannot go out."""

    async def send(self, message: Message) -> None:
        """Send (or store) one message."""
        ...


def compose(message: Message, sender: str) -> EmailMessage:
    """Build the MIME message, refusing a malformed recipient or a header split over lines."""
    try:
        recipient = normalise(message.to)
    except ValueError as exc:
        raise MailError(f"the recipient address is not valid: {exc}") from None

    mime = EmailMessage()
    try:
        mime["From"] = sender
        mime["To"] = recipient
        mime["Subject"] = message.subject
    except ValueError:  # the email package refuses CR and LF, which would inject headers
        raise MailError("a mail header contains a line break") from None
    # It also decodes RFC 2047 words (=?utf-8?b?...?=) in what it is given, and would write
    # the line breaks they hide: judge each header by its decoded value too.
    if any("\r" in str(value) or "\n" in str(value) for value in mime.values()):
        raise MailError("a mail header contains a line break")
    mime["Date"] = formatdate(localtime=False)
    mime["Message-ID"] = make_msgid(domain=_sender_domain(sender))

    # Plain ASCII goes as 7bit so sign-in links stay readable (and clickable) in the raw
    # message; anything else lets the email package choose an encoding.
    plain = message.text.isascii() and all(len(line) <= 998 for line in message.text.splitlines())
    mime.set_content(message.text, cte="7bit" if plain else None)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


def _sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


@dataclass(frozen=True, slots=True)
class _SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool | None
    username: str | None
    password: str | None


def _parse_smtp_url(url: str) -> _SmtpTarget:
    """Read ``smtp[s]://[user:pass@]host[:port][?starttls=auto|no|require]``.

    Errors name the setting but never repeat the URL, which may hold a password.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("IDP_SMTP_URL: is not a valid URL") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError("IDP_SMTP_URL: must be smtp://host or smtps://host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError("IDP_SMTP_URL: must not carry a path or fragment")

    query = parse_qs(parts.query, keep_blank_values=True)
    starttls = query.pop("starttls", ["auto"])
    if query or len(starttls) != 1 or starttls[0] not in _STARTTLS:
        raise ConfigError("IDP_SMTP_URL: the only option is starttls=auto|no|require")
    if parts.scheme == "smtps" and starttls[0] != "auto":
        raise ConfigError("IDP_SMTP_URL: starttls does not apply to smtps")

    return _SmtpTarget(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        implicit_tls=parts.scheme == "smtps",
        starttls=None if parts.scheme == "smtps" else _STARTTLS[starttls[0]],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class SmtpMailer:
    """Sends each message over a new SMTP connection, as described by an ``IDP_SMTP_URL``.

    ``smtp://`` upgrades with STARTTLS when the server offers it (``?starttls=no`` never does,
    ``?starttls=require`` refuses a server that does not); ``smtps://`` speaks TLS from the
    first byte. Server certificates are verified.
    """

    def __init__(self, url: str, sender: str, timeout: float = SMTP_TIMEOUT) -> None:
        self._target = _parse_smtp_url(url)
        self._sender = sender
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._target.host!r}, port={self._target.port})"

    async def send(self, message: Message) -> None:
        """Deliver one message, or raise :class:`MailError` saying only what kind of fault."""
        mime = compose(message, self._sender)
        target = self._target
        try:
            await aiosmtplib.send(
                mime,
                recipients=[str(mime["To"])],
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.implicit_tls,
                start_tls=target.starttls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(
                f"sending mail through {target.host}:{target.port} failed: {_describe(exc)}"
            ) from None
        logger.info("mail sent through %s:%d", target.host, target.port)


def _describe(exc: BaseException) -> str:
    """Name the fault without its text, which may echo addresses or server details."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__} (SMTP {exc.code})"
    return type(exc).__name__


class OutboxMailer:
    """Writes each message as an ``.eml`` file into a private folder, for development and tests.

    The folder is made ``0700`` and each file ``0600``: a message holds a working sign-in link.
    """

    def __init__(self, folder: Path, sender: str = "idp@localhost") -> None:
        self.folder = folder
        self._sender = sender

    async def send(self, message: Message) -> None:
        """Store one message and log the file's path (never its content)."""
        data = compose(message, self._sender).as_bytes()
        try:
            path = await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise MailError(f"writing to the outbox failed: {type(exc).__name__}") from None
        logger.info("mail written to %s", path)

    def _write(self, data: bytes) -> Path:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        path = self.folder / f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        return path


def open_mailer(settings: Settings) -> Mailer:
    """The mailer the settings ask for: SMTP when configured, else the outbox outside prod."""
    if settings.smtp_url is not None:
        return SmtpMailer(settings.smtp_url.get_secret_value(), sender=settings.mail_from)
    if settings.env == "prod":
        raise ConfigError("IDP_SMTP_URL: is required in prod")
    return OutboxMailer(settings.outbox_dir, sender=settings.mail_from)
