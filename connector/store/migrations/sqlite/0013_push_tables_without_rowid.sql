-- The tables every push writes keep their rows in their primary key's B-tree (WITHOUT ROWID) instead of a
-- rowid table beside a key index: a push writes each row's page once instead of twice, about a third fewer
-- WAL frames per push (29 -> 22 for a number change). Columns, keys and indexes are as before.

CREATE TABLE extension_owners_new (
    extension text PRIMARY KEY,
    verba_user_id bigint NOT NULL,
    source text NOT NULL,
    external_id text NOT NULL
) WITHOUT ROWID;
INSERT INTO extension_owners_new SELECT extension, verba_user_id, source, external_id FROM extension_owners;
DROP TABLE extension_owners;
ALTER TABLE extension_owners_new RENAME TO extension_owners;

CREATE TABLE extension_locks_new (
    extension text PRIMARY KEY,
    owner text NOT NULL,
    lock_until double precision NOT NULL
) WITHOUT ROWID;
INSERT INTO extension_locks_new SELECT extension, owner, lock_until FROM extension_locks;
DROP TABLE extension_locks;
ALTER TABLE extension_locks_new RENAME TO extension_locks;
CREATE INDEX extension_locks_owner ON extension_locks (owner);

CREATE TABLE pushed_extensions_new (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    extension TEXT NOT NULL,
    record TEXT NOT NULL,
    pushed_at REAL NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, external_id, extension)
) WITHOUT ROWID;
INSERT INTO pushed_extensions_new SELECT source, external_id, extension, record, pushed_at, position
FROM pushed_extensions;
DROP TABLE pushed_extensions;
ALTER TABLE pushed_extensions_new RENAME TO pushed_extensions;

CREATE TABLE extension_claims_new (
    extension text NOT NULL,
    source text NOT NULL,
    external_id text NOT NULL,
    verba_user_id bigint,
    login_name text,
    claimed_at double precision NOT NULL,
    PRIMARY KEY (extension, source, external_id)
) WITHOUT ROWID;
INSERT INTO extension_claims_new SELECT extension, source, external_id, verba_user_id, login_name, claimed_at
FROM extension_claims;
DROP TABLE extension_claims;
ALTER TABLE extension_claims_new RENAME TO extension_claims;
CREATE INDEX extension_claims_user ON extension_claims (source, external_id);

CREATE TABLE stop_recordings_new (
    source text NOT NULL,
    external_id text NOT NULL,
    at double precision NOT NULL,
    CONSTRAINT stop_recordings_pkey PRIMARY KEY (source, external_id)
) WITHOUT ROWID;
INSERT INTO stop_recordings_new SELECT source, external_id, at FROM stop_recordings;
DROP TABLE stop_recordings;
ALTER TABLE stop_recordings_new RENAME TO stop_recordings;
CREATE INDEX stop_recordings_window ON stop_recordings (source, at, external_id);

CREATE TABLE verba_users_new (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;
INSERT INTO verba_users_new SELECT source, external_id, user_id FROM verba_users;
DROP TABLE verba_users;
ALTER TABLE verba_users_new RENAME TO verba_users;
