"""Outgoing mail through a real SMTP server and through the folder outbox."""

from __future__ import annotations

import base64
import logging
import secrets
import socket
import stat
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from idp.config import ConfigError, load_settings
from idp.mail import MailError, Message, OutboxMailer, SmtpMailer, open_mailer
from tests.conftest import SmtpServer

SENDER = "IdP <idp@id.example>"
LINK = "https://id.example/magic-link/confirm?token=never-log-me"
PASSWORD = "hunter2-do-not-leak"
KEK = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def _sign_in(html: str | None = None) -> Message:
    return Message(
        to="Person@BÜCHER.example",
        subject="Your sign-in link",
        text=f"Open {LINK} to sign in.\n",
        html=html,
    )


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def _assert_no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert LINK not in text


# SMTP


async def test_message_sent_over_smtp_arrives_with_sender_recipient_subject_and_text(
    smtp_server: SmtpServer,
) -> None:
    await SmtpMailer(smtp_server.url, sender=SENDER).send(_sign_in())

    [received] = await smtp_server.wait_for(1)
    assert received.envelope_from == "idp@id.example"
    assert received.envelope_to == ("Person@xn--bcher-kva.example",)
    assert received.message["From"] == SENDER
    assert received.message["To"] == "Person@xn--bcher-kva.example"
    assert received.message["Subject"] == "Your sign-in link"
    assert received.message["Message-ID"].endswith("@id.example>")
    assert received.message.get_content_type() == "text/plain"
    assert _text_body(received.message) == f"Open {LINK} to sign in.\n"


async def test_html_is_sent_as_an_alternative_to_the_text(smtp_server: SmtpServer) -> None:
    html = f'<p><a href="{LINK}">Sign in</a></p>\n'

    await SmtpMailer(smtp_server.url, sender=SENDER).send(_sign_in(html=html))

    [received] = await smtp_server.wait_for(1)
    assert received.message.get_content_type() == "multipart/alternative"
    html_part = received.message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    assert html_part.get_content() == html
    assert _text_body(received.message) == f"Open {LINK} to sign in.\n"


async def test_starttls_no_sends_in_plain_text(smtp_server: SmtpServer) -> None:
    await SmtpMailer(smtp_server.url + "?starttls=no", sender=SENDER).send(_sign_in())

    assert len(await smtp_server.wait_for(1)) == 1


async def test_starttls_require_refuses_a_server_that_does_not_offer_it(
    smtp_server: SmtpServer,
) -> None:
    mailer = SmtpMailer(smtp_server.url + "?starttls=require", sender=SENDER)

    with pytest.raises(MailError, match="failed"):
        await mailer.send(_sign_in())
    assert smtp_server.messages == []


async def test_smtps_speaks_tls_from_the_first_byte(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url.replace("smtp://", "smtps://"), sender=SENDER)

    with pytest.raises(MailError, match="failed"):
        await mailer.send(_sign_in())
    assert smtp_server.messages == []


async def test_unreachable_server_raises_mail_error_without_password_or_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"smtp://mailer:{PASSWORD}@127.0.0.1:{_closed_port()}"

    with pytest.raises(MailError) as raised:
        await SmtpMailer(url, sender=SENDER, timeout=2).send(_sign_in())

    assert "127.0.0.1" in str(raised.value)
    _assert_no_secret(str(raised.value))
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    _assert_no_secret(caplog.text)


async def test_refused_login_raises_mail_error_without_the_password(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = smtp_server.url.replace("//", f"//mailer:{PASSWORD}@")

    with pytest.raises(MailError) as raised:
        await SmtpMailer(url, sender=SENDER).send(_sign_in())

    _assert_no_secret(str(raised.value))
    _assert_no_secret(caplog.text)
    assert smtp_server.messages == []


async def test_a_line_break_in_the_subject_is_refused_before_sending(
    smtp_server: SmtpServer,
) -> None:
    message = Message(to="person@example.com", subject="Hi\r\nBcc: x@evil.example", text="t")

    with pytest.raises(MailError, match="line break"):
        await SmtpMailer(smtp_server.url, sender=SENDER).send(message)
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    "hidden",
    [
        "x\r\nReply-To: attacker@evil.example\r\n\r\nSign in at https://evil.example",
        "x\nBcc: victim@evil.example",
    ],
    ids=["body-and-header", "bcc"],
)
async def test_a_line_break_hidden_in_an_encoded_word_is_refused_before_sending(
    smtp_server: SmtpServer, hidden: str
) -> None:
    """The email package decodes RFC 2047 words in a header it is given, so a subject of
    ``=?utf-8?b?...?=`` would smuggle the line breaks the plain check looks for."""
    word = "=?utf-8?b?" + base64.b64encode(hidden.encode()).decode() + "?="
    message = Message(to="person@example.com", subject=f"Invitation to {word}", text="t")

    with pytest.raises(MailError, match="line break"):
        await SmtpMailer(smtp_server.url, sender=SENDER).send(message)
    assert smtp_server.messages == []


async def test_a_malformed_recipient_is_refused_before_sending(smtp_server: SmtpServer) -> None:
    message = Message(to="evil,person@example.com", subject="Hi", text="t")

    with pytest.raises(MailError, match="recipient"):
        await SmtpMailer(smtp_server.url, sender=SENDER).send(message)
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    "url",
    [
        f"http://mailer:{PASSWORD}@mail.example",
        f"smtp://mailer:{PASSWORD}@",
        f"smtp://mailer:{PASSWORD}@mail.example:port",
        f"smtp://mailer:{PASSWORD}@mail.example/path",
        f"smtp://mailer:{PASSWORD}@mail.example?starttls=maybe",
        f"smtp://mailer:{PASSWORD}@mail.example?debug=1",
        f"smtps://mailer:{PASSWORD}@mail.example?starttls=no",
    ],
    ids=["scheme", "no host", "bad port", "path", "starttls value", "unknown option", "smtps"],
)
def test_malformed_smtp_url_is_a_config_error_that_hides_the_url(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^IDP_SMTP_URL: ") as raised:
        SmtpMailer(url, sender=SENDER)

    assert PASSWORD not in str(raised.value)
    assert raised.value.__cause__ is None


def test_smtp_mailer_repr_shows_no_credentials() -> None:
    mailer = SmtpMailer(f"smtp://mailer:{PASSWORD}@mail.example:587", sender=SENDER)

    assert repr(mailer) == "SmtpMailer(host='mail.example', port=587)"


# Outbox


async def test_outbox_writes_a_private_eml_file_and_logs_only_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "outbox"

    await OutboxMailer(folder, sender=SENDER).send(_sign_in(html=f"<a href='{LINK}'>in</a>"))

    [path] = folder.glob("*.eml")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(stored, EmailMessage)
    assert stored["To"] == "Person@xn--bcher-kva.example"
    assert stored["Subject"] == "Your sign-in link"
    assert _text_body(stored) == f"Open {LINK} to sign in.\n"
    assert str(path) in caplog.text
    _assert_no_secret(caplog.text)


async def test_outbox_keeps_each_message_in_its_own_file(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path / "outbox")

    await mailer.send(_sign_in())
    await mailer.send(_sign_in())

    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


async def test_outbox_that_cannot_be_written_raises_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    with pytest.raises(MailError, match="outbox"):
        await OutboxMailer(blocker / "outbox").send(_sign_in())


# Choosing a mailer


def test_smtp_url_selects_the_smtp_mailer_even_in_prod() -> None:
    settings = load_settings(
        env="prod",
        issuer="https://id.example",
        key_encryption_key=KEK,
        smtp_url="smtps://mail.example",
    )

    assert isinstance(open_mailer(settings), SmtpMailer)


@pytest.mark.parametrize("env", ["dev", "test"])
def test_without_smtp_dev_and_test_use_the_outbox(env: str, tmp_path: Path) -> None:
    settings = load_settings(env=env, smtp_url=None, outbox_dir=tmp_path / "outbox")

    mailer = open_mailer(settings)

    assert isinstance(mailer, OutboxMailer)
    assert mailer.folder == tmp_path / "outbox"


def test_prod_without_smtp_is_refused() -> None:
    settings = load_settings(
        env="prod", issuer="https://id.example", key_encryption_key=KEK, smtp_url=None
    )

    with pytest.raises(ConfigError, match=r"^IDP_SMTP_URL: is required in prod$"):
        open_mailer(settings)
