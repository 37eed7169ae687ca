"""Grants of the token endpoint, one module each, named by ``grant_type``.

Each grant gets an authenticated client and the parsed parameters and returns the token
response body; the token endpoint does the shared steps around it.
"""
