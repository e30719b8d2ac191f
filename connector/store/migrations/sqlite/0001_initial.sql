-- Events (the durable queue), their delivery attempts, the audit trail and the per-user projection.

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key TEXT UNIQUE,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state_json TEXT NOT NULL,
    cause TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead', 'held', 'discarded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_cause TEXT,
    last_error TEXT,
    discard_reason TEXT,
    updated_at REAL NOT NULL
);

CREATE INDEX events_due ON events (state, next_attempt_at, id);

CREATE INDEX events_user ON events (source, external_id, state, id);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('done', 'retry', 'dead')),
    cause TEXT,
    error TEXT,
    sent TEXT NOT NULL
);

CREATE INDEX attempts_user ON attempts (source, external_id, id);

CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);

CREATE TABLE pushed_extensions (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    extension TEXT NOT NULL,
    record TEXT NOT NULL,
    pushed_at REAL NOT NULL,
    PRIMARY KEY (source, external_id, extension)
);

CREATE TABLE verba_users (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (source, external_id)
);
