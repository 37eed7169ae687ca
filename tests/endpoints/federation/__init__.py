"""Federated sign-in against stand-in upstreams on loopback."""
