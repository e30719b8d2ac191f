-- LDAP watermarks: one cursor per directory, and what was last seen of each entry.

CREATE TABLE ldap_watermarks (
    directory TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    version INTEGER NOT NULL,
    known INTEGER NOT NULL DEFAULT 0,
    last_run_at REAL,
    last_success_at REAL,
    last_error TEXT,
    counts TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE ldap_entries (
    directory TEXT NOT NULL,
    external_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    active INTEGER NOT NULL,
    groups TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (directory, external_id)
);
