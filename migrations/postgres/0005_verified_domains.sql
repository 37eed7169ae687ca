-- Email domains an organization has proven it owns (PostgreSQL). Only a verified domain routes
-- people to the organization's SSO connection, counts their emails as verified, or enforces
-- SSO on them; a claim in a connection's domains alone does none of that.

CREATE TABLE verified_domains (
    domain      text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    verified_at bigint NOT NULL
);

CREATE INDEX verified_domains_org_id ON verified_domains (org_id);
