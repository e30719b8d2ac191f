-- Extension ownership (connector/store/ownership.py); claims backfilled from what was pushed recording.

CREATE TABLE extension_claims (
    extension TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    verba_user_id INTEGER,
    login_name TEXT,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (extension, source, external_id)
);

CREATE INDEX extension_claims_user ON extension_claims (source, external_id);

CREATE TABLE extension_owners (
    extension TEXT PRIMARY KEY,
    verba_user_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL
);

CREATE TABLE extension_locks (
    extension TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lock_until REAL NOT NULL
);

CREATE INDEX extension_locks_owner ON extension_locks (owner);

CREATE TABLE extension_conflicts (
    extension TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    verba_user_id INTEGER,
    login_name TEXT,
    owner_user_id INTEGER,
    owner_login TEXT,
    owner_claimant TEXT,
    message TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (extension, source, external_id)
);

CREATE INDEX extension_conflicts_user ON extension_conflicts (source, external_id);

CREATE TABLE stop_recordings (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    at REAL NOT NULL
);

CREATE INDEX stop_recordings_window ON stop_recordings (source, at);

CREATE TABLE stop_recording_sources (source TEXT PRIMARY KEY);

ALTER TABLE events ADD COLUMN approved integer NOT NULL DEFAULT 0;

INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
    SELECT extension, source, external_id, json_extract(record, '$.user_id'), NULL, pushed_at FROM pushed_extensions
    WHERE json_extract(record, '$.voice') OR json_extract(record, '$.im') OR json_extract(record, '$.video')
      OR json_extract(record, '$.screen_capture_enabled');
