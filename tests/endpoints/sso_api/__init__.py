"""The admin API for SSO connections."""
