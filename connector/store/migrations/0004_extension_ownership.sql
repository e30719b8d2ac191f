-- Extension ownership (connector/store/ownership.py): the tables, alike on both dialects; each dialect's
-- 0004 then backfills the claims from what was pushed recording.

CREATE TABLE extension_claims (
    extension text NOT NULL,
    source text NOT NULL,
    external_id text NOT NULL,
    verba_user_id bigint,
    login_name text,
    claimed_at double precision NOT NULL,
    PRIMARY KEY (extension, source, external_id)
);

CREATE INDEX extension_claims_user ON extension_claims (source, external_id);

CREATE TABLE extension_owners (
    extension text PRIMARY KEY,
    verba_user_id bigint NOT NULL,
    source text NOT NULL,
    external_id text NOT NULL
);

CREATE TABLE extension_locks (
    extension text PRIMARY KEY,
    owner text NOT NULL,
    lock_until double precision NOT NULL
);

CREATE INDEX extension_locks_owner ON extension_locks (owner);

CREATE TABLE extension_conflicts (
    extension text NOT NULL,
    source text NOT NULL,
    external_id text NOT NULL,
    event_id bigint NOT NULL,
    verba_user_id bigint,
    login_name text,
    owner_user_id bigint,
    owner_login text,
    owner_claimant text,
    message text NOT NULL,
    since double precision NOT NULL,
    PRIMARY KEY (extension, source, external_id)
);

CREATE INDEX extension_conflicts_user ON extension_conflicts (source, external_id);

CREATE TABLE stop_recordings (
    source text NOT NULL,
    external_id text NOT NULL,
    at double precision NOT NULL
);

CREATE INDEX stop_recordings_window ON stop_recordings (source, at);

CREATE TABLE stop_recording_sources (source text PRIMARY KEY);

ALTER TABLE events ADD COLUMN approved integer NOT NULL DEFAULT 0;
