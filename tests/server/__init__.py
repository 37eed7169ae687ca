"""End-to-end tests that drive real ``idp serve`` processes over HTTP."""
