"""Surface authentication: what sibling services use to decide who may pass (issue #5).

A sibling installs only what this package needs, the ``surface`` extra (starlette, httpx,
joserfc, idna, orjson), and this repository's ``idp`` with ``pip install --no-deps``; it never
imports ``idp``'s server, settings or stores. The parts:

- :mod:`idp.surface.model`, :mod:`idp.surface.allow`: surfaces and their allow lists;
- :mod:`idp.surface.decide`: the rules, shared with ``idp``'s decision endpoint;
- :mod:`idp.surface.tokens`: access tokens checked locally against ``idp``'s JWKS;
- :mod:`idp.surface.signatures`: webhook signatures;
- :mod:`idp.surface.client`: ``idp`` over HTTP (surfaces, decisions, sessions, reports);
- :mod:`idp.surface.verifier`: one request decided, locally or through ``idp``;
- :mod:`idp.surface.middleware`: the ASGI middleware for Starlette and FastAPI apps.

Wiring it into an app::

    http = httpx.AsyncClient(timeout=3)
    client = IdpClient(ISSUER, DEPLOYMENT_ID, SIBLING_KEY, http=http)  # auth:read auth:report
    verifier = SurfaceVerifier(client, TokenVerifier(ISSUER, http=http), environment="prod")
    app = Starlette(routes=..., middleware=[Middleware(SurfaceAuth, verifier=verifier)])
    # in a route: request.state.principal is the Caller that passed
"""
