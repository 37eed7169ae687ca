"""Surface authentication: what sibling services use to decide who may pass (issue #5).

Built so far: allow lists (:mod:`idp.surface.allow`), webhook signatures
(:mod:`idp.surface.signatures`) and local checks of idp's access tokens from its JWKS
(:mod:`idp.surface.tokens`). Deployments and their surfaces, API keys per deployment, the
middleware, the decision endpoint and the access log come with the rest of issue #5.
"""
