"""From an upstream's assertion to one of our accounts (SECURITY.md, "People and upstreams").

A person has one account and any number of linked identities, each keyed by (issuer, subject).
The rules, in order:

1. ``enforce_sso``: an email in a domain whose SSO connection enforces it signs in through that
   connection only, whatever path it comes by (login, linking, invites), and so does an account
   whose own email is in such a domain.
2. A known identity signs in its account.
3. Linking (a signed-in person adding a method) links to that person, unless the identity is
   already someone else's.
4. An unknown identity with a verified email joins the account with that email only when the
   account's email is verified too; with no such account it creates one. Apple's private relay
   addresses never join another account.
5. Anything else is refused: an account needs a verified email, and an unverified or mutable
   claim never reaches an existing account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from idp.connectors.base import Assertion
from idp.connectors.sso import SsoConnector
from idp.hashing import new_secret
from idp.provider import Provider
from idp.store import Identity, StoreError, User

USER_ID_PREFIX = "usr_"

audit = logging.getLogger("idp.audit")


def audit_event(event: str, **fields: str) -> None:
    """One line of the audit log, its fields in the text (log formats drop ``extra``) and in
    ``extra`` for structured handlers. Fields name people and connectors, never secrets."""
    text = " ".join(
        f"{name}={value!r}" if " " in value else f"{name}={value}" for name, value in fields.items()
    )
    audit.info("%s %s", event, text, extra={"event": event, **fields})


class SignInRefused(Exception):
    """The assertion does not lead to an account; the message is for the person."""


@dataclass(frozen=True, slots=True)
class Outcome:
    user: User
    created: bool = False
    linked: bool = False


async def enforced_connection(provider: Provider, email: str | None) -> SsoConnector | None:
    """The connection that insists on signing in people with ``email``, if any."""
    if email is None:
        return None
    connection = await provider.connectors.for_email(provider.store, provider.sealer, email)
    return connection if connection is not None and connection.connection.enforce_sso else None


async def check_enforcement(provider: Provider, connector_key: str, *emails: str | None) -> None:
    """Refuse when an address must sign in through an SSO connection other than this one."""
    for email in emails:
        connection = await enforced_connection(provider, email)
        if connection is not None and connection.key != connector_key:
            raise SignInRefused(
                f"Your organization requires signing in with {connection.label}. "
                "Use its single sign-on button with your work email."
            )


async def resolve(
    provider: Provider, connector_key: str, assertion: Assertion, *, link_to: str = ""
) -> Outcome:
    """The account ``assertion`` signs in (or, with ``link_to``, the account it joins)."""
    store = provider.store
    identity = await store.get_identity(assertion.issuer, assertion.subject)
    owner = await store.get_user(identity.user_id) if identity else None
    await check_enforcement(
        provider, connector_key, assertion.email, owner.email if owner else None
    )
    email = assertion.email if assertion.email_verified else None

    if link_to:
        return await _link(provider, connector_key, assertion, owner, link_to)
    if owner is not None:
        await store.update_identity_email(
            assertion.issuer, assertion.subject, assertion.email, assertion.email_verified
        )
        return Outcome(owner)
    if email is None:
        raise SignInRefused(
            "Your provider did not confirm your email address, so we cannot create or find "
            "your account. Confirm the address with the provider, or sign in another way."
        )
    existing = await store.get_user_by_email(email)
    if existing is None:
        return await _create(provider, connector_key, assertion, email)
    if not existing.email_verified or assertion.private_relay:
        raise SignInRefused(
            "An account with this email exists. Sign in with the method you used before, "
            "then link this one from your account page."
        )
    await _add_identity(provider, existing, assertion)
    audit_event("identity_linked", user=existing.user_id, via=connector_key, by="verified email")
    return Outcome(existing, linked=True)


async def _link(
    provider: Provider, connector_key: str, assertion: Assertion, owner: User | None, user_id: str
) -> Outcome:
    user = await provider.store.get_user(user_id)
    if user is None:
        raise SignInRefused("Your session has ended. Sign in again, then link.")
    await check_enforcement(provider, connector_key, user.email)
    if owner is not None:
        if owner.user_id != user.user_id:
            raise SignInRefused("That account is already linked to another person here.")
        return Outcome(user)
    await _add_identity(provider, user, assertion)
    audit_event("identity_linked", user=user.user_id, via=connector_key, by="signed-in person")
    return Outcome(user, linked=True)


async def _create(
    provider: Provider, connector_key: str, assertion: Assertion, email: str
) -> Outcome:
    user = User(
        user_id=USER_ID_PREFIX + new_secret(nbytes=16),
        email=email,
        email_verified=True,
        name=assertion.name,
        created_at=provider.now(),
    )
    try:
        await provider.store.create_user(user)
    except StoreError:
        raise SignInRefused("Signing in did not work this time. Please try again.") from None
    try:
        await _add_identity(provider, user, assertion)
    except SignInRefused:
        await provider.store.delete_user(user.user_id)  # nothing half-written stays behind
        raise
    audit_event("account_created", user=user.user_id, via=connector_key)
    return Outcome(user, created=True)


async def _add_identity(provider: Provider, user: User, assertion: Assertion) -> None:
    identity = Identity(
        issuer=assertion.issuer,
        subject=assertion.subject,
        user_id=user.user_id,
        email=assertion.email,
        email_verified=assertion.email_verified,
        created_at=provider.now(),
    )
    try:
        await provider.store.link_identity(identity)
    except StoreError:
        # Linked by a concurrent sign-in a moment ago; the person can simply sign in again.
        raise SignInRefused("Signing in did not work this time. Please try again.") from None
