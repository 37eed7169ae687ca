"""Deciding requests inside a sibling service, by the same rules as ``idp`` (issue #5).

:class:`SurfaceVerifier` runs :func:`idp.surface.decide.decide` where the request arrives.
OAuth access tokens are checked locally against ``idp``'s JWKS (:class:`TokenVerifier`), so
most API traffic never waits on ``idp``; API keys, sessions and webhook signatures only ``idp``
can check, through its decision endpoint (:meth:`IdpClient.ask`).

A token checked locally is not looked up in ``idp``'s revocation list: it passes until it
expires, which is why ``idp``'s access tokens are short-lived (RFC 9068 section 5).

Decisions ``idp`` did not record itself (local ones, cached answers, refusals while ``idp``
is unreachable) go to its access log in the background: a bounded queue, emptied in batches
every ``report_interval`` seconds. A full queue drops events rather than slow a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import quote

from idp.surface.client import PATH_SAFE, IdpClient, IdpUnavailable, ReportedEvent, unavailable
from idp.surface.decide import (
    DEV,
    Caller,
    Credentials,
    Decision,
    Refused,
    decide,
    invalid,
    skips_in_dev,
)
from idp.surface.model import SESSION_PREFIX, Surface
from idp.surface.tokens import AccessToken, TokenRefused, TokenVerifier

log = logging.getLogger("idp.surface.verifier")

CLIENT_CREDENTIALS = "client_credentials"
# What TokenVerifier says when it cannot fetch the JWKS: idp is down, the token may be fine.
KEYS_UNAVAILABLE = "the signing keys are unavailable"
DEV_REASON = "dev mode: surface auth skipped"


class SurfaceVerifier:
    """Decides requests to one deployment's surfaces; see the module docstring."""

    def __init__(
        self,
        client: IdpClient,
        tokens: TokenVerifier,
        *,
        environment: str,
        report_queue: int = 1000,
        report_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.environment = environment
        self._checks = LocalChecks(tokens)
        self._queue: asyncio.Queue[ReportedEvent] = asyncio.Queue(report_queue)
        self._interval = report_interval
        self._pending = asyncio.Event()
        self._sending = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def check(
        self,
        surface: Surface,
        credentials: Credentials,
        *,
        method: str,
        path: str,
        client_host: str | None,
    ) -> Decision:
        """Decide one request. ``client_host`` is the peer address of the connection (or one
        a proxy the server trusts vouched for), never a header: dev mode depends on it."""
        if skips_in_dev(self.environment, client_host):
            decision, recorded = Decision(True, 200, DEV_REASON, DEV, method="dev"), False
        else:
            decision, recorded = await self._decide(surface, credentials, method, path, client_host)
        if not recorded:
            self.report(surface.name, method, path, decision, client_host)
        return decision

    def report(
        self, surface: str, method: str, path: str, decision: Decision, client_host: str | None
    ) -> None:
        """Queue a decision for ``idp``'s access log without waiting; drop it if the queue
        is full."""
        caller = decision.caller
        event = ReportedEvent(
            at=int(self.client.clock()),
            surface=surface,
            method=_printable(method, 16),
            path=_printable(quote(path, safe=PATH_SAFE), 512),
            principal=_printable(caller.id, 320) if caller else "",
            principal_kind=caller.kind if caller else decision.method,
            outcome="allowed" if decision.allowed else "denied",
            reason=_printable(decision.reason, 200),
            client_address=_printable(client_host or "", 64),
        )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self._pending.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send_reports())

    async def flush(self) -> None:
        """Report everything queued now, and wait until it is sent (or given up on)."""
        async with self._sending:
            while not self._queue.empty():
                batch = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
                if not await self.client.report(batch):
                    log.warning("access events lost", extra={"events": len(batch)})

    async def aclose(self) -> None:
        """Stop reporting in the background, after sending what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _decide(
        self,
        surface: Surface,
        credentials: Credentials,
        method: str,
        path: str,
        client_host: str | None,
    ) -> tuple[Decision, bool]:
        """The decision, and whether ``idp`` recorded it itself."""
        try:
            config = await self.client.surfaces()
            local = await decide(surface, credentials, self._checks, extra_allow=config.allow)
        except IdpUnavailable as exc:
            log.warning("surfaces unavailable: %s", exc)
            return unavailable(surface), False
        except _Delegated as delegated:
            only = delegated.credentials
        else:
            return local, False
        address = client_host or ""
        answer = await self.client.ask(
            surface, only, method=method, path=path, client_address=address
        )
        return answer.decision, answer.recorded

    async def _send_reports(self) -> None:
        """Wait for events, let a batch gather for ``report_interval``, send; forever."""
        while True:
            await self._pending.wait()
            await asyncio.sleep(self._interval)
            self._pending.clear()
            await self.flush()


class LocalChecks:
    """:class:`idp.surface.decide.Checks` inside a sibling: OAuth access tokens against the
    JWKS; the other credentials are handed to ``idp`` (:class:`_Delegated`)."""

    def __init__(self, tokens: TokenVerifier) -> None:
        self.tokens = tokens

    async def oauth(self, token: str, surface: Surface) -> Caller:
        """A token for exactly this surface's resource (RFC 9068 section 4); the scopes and
        the allow list are :func:`decide`'s to check."""
        if surface.resource is None:
            raise invalid("this surface takes no access tokens")
        try:
            verified = await self.tokens.verify(token, resource=surface.resource)
        except TokenRefused as exc:
            if exc.description == KEYS_UNAVAILABLE:
                raise Refused(503, "temporarily_unavailable", "idp unavailable") from None
            raise invalid(exc.description) from None
        return caller_of(verified)

    async def api_key(self, key: str, surface: Surface) -> Caller:
        if not _plain(key):
            raise invalid("the API key is not valid")
        raise _Delegated(Credentials(bearer=key))

    async def session(self, value: str, surface: Surface) -> Caller:
        if not _plain(value) or not value.startswith(SESSION_PREFIX):
            raise invalid("the session is not valid")
        raise _Delegated(Credentials(session=value))

    async def signature(self, header: str, body: bytes, surface: Surface) -> Caller:
        if not _plain(header):
            raise invalid("malformed signature header")
        raise _Delegated(Credentials(signature=header, body=body))


def caller_of(token: AccessToken) -> Caller:
    """Who a verified token stands for: the client of a ``client_credentials`` token, else
    the person, with the email and its verification the token carries (idp puts them in
    tokens for a deployment's resources)."""
    if token.claims.get("gty") == CLIENT_CREDENTIALS:
        return Caller("client", token.client_id, client_id=token.client_id, scopes=token.scopes)
    email = token.claims.get("email")
    email = email if isinstance(email, str) and email else None
    return Caller(
        "user",
        email or token.subject,
        email=email,
        email_verified=token.claims.get("email_verified") is True,
        client_id=token.client_id,
        user_id=token.subject,
        scopes=token.scopes,
    )


def _printable(text: str, limit: int) -> str:
    """A field as the access log takes it: printable and at most ``limit`` characters (one
    event it refuses would cost the whole batch)."""
    return "".join(c for c in text if c.isprintable())[:limit]


def _plain(value: str) -> bool:
    """Printable ASCII without spaces: anything else is no credential of idp's, and could
    not travel in a header to it."""
    return value.isascii() and value.isprintable() and " " not in value


class _Delegated(Exception):
    """The credential is one only ``idp`` can check; raised through :func:`decide`, which
    lets anything but :class:`Refused` pass."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__("checked by idp")
        self.credentials = credentials
