-- SCIM resources, and one row per searchable value for filters (connector/store/scim.py).
-- COLLATE "C" compares code points, as SQLite does, so gt/lt filters agree on both backends.

CREATE TABLE scim_resources (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client text NOT NULL,
    resource_type text NOT NULL,
    id text COLLATE "C" NOT NULL,
    unique_key text,
    display text NOT NULL,
    body jsonb NOT NULL,
    version bigint NOT NULL,
    created text COLLATE "C" NOT NULL,
    last_modified text COLLATE "C" NOT NULL,
    UNIQUE (client, id),
    UNIQUE (client, resource_type, unique_key)
);

CREATE TABLE scim_values (
    resource_pk bigint NOT NULL REFERENCES scim_resources (pk) ON DELETE CASCADE,
    attr text COLLATE "C" NOT NULL,
    idx integer NOT NULL,
    value text COLLATE "C" NOT NULL,
    folded text COLLATE "C" NOT NULL
);

CREATE INDEX scim_values_lookup ON scim_values (attr, folded, resource_pk);

CREATE INDEX scim_values_resource ON scim_values (resource_pk, attr);
