"""Connectors: the upstream identity providers people sign in with.

One module per upstream kind (``github``, ``google``, ``microsoft``, ``apple``, and ``oidc`` for
enterprise connections); :mod:`idp.connectors.base` holds what they share. A connector turns an
upstream's answer into an :class:`~idp.connectors.base.Assertion` (who the upstream says this
is); :mod:`idp.accounts` decides what that means for our accounts.
"""
