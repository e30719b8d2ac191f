-- SCIM resources, and one row per searchable value for filters (connector/store/scim.py).

CREATE TABLE scim_resources (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    client TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    unique_key TEXT,
    display TEXT NOT NULL,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    UNIQUE (client, id),
    UNIQUE (client, resource_type, unique_key)
);

CREATE TABLE scim_values (
    resource_pk INTEGER NOT NULL REFERENCES scim_resources (pk) ON DELETE CASCADE,
    attr TEXT NOT NULL,
    idx INTEGER NOT NULL,
    value TEXT NOT NULL,
    folded TEXT NOT NULL
);

CREATE INDEX scim_values_lookup ON scim_values (attr, folded, resource_pk);

CREATE INDEX scim_values_resource ON scim_values (resource_pk, attr);
