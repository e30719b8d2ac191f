-- LDAP watermarks: one cursor per directory, and what was last seen of each entry.

CREATE TABLE ldap_watermarks (
    directory text PRIMARY KEY,
    cursor jsonb NOT NULL,
    version bigint NOT NULL,
    known bigint NOT NULL DEFAULT 0,
    last_run_at double precision,
    last_success_at double precision,
    last_error text,
    counts jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE ldap_entries (
    directory text NOT NULL,
    external_id text NOT NULL,
    digest text NOT NULL,
    active boolean NOT NULL,
    groups jsonb NOT NULL,
    state jsonb NOT NULL,
    PRIMARY KEY (directory, external_id)
);
