"""Surface authentication: what sibling services use to decide who may pass (issue #5).

Built so far: allow lists (:mod:`idp.surface.allow`) and webhook signatures
(:mod:`idp.surface.signatures`). The verifier, the middleware and the decision endpoint come
with the rest of issue #5.
"""
