-- Events (the durable queue), their delivery attempts, the audit trail and the per-user projection.
-- A queue table: keep autovacuum ahead of the dead tuples every claim and settle leave
-- behind (reference/delivery.md, 1.2), and leave room for HOT updates. `attempts.sent` is json,
-- not jsonb: it is only read back whole, and json keeps a \u0000 that jsonb would refuse.

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idem_key text UNIQUE,
    source text NOT NULL,
    external_id text NOT NULL,
    kind text NOT NULL,
    state_json jsonb NOT NULL,
    cause text NOT NULL,
    accepted_at double precision NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead', 'held', 'discarded')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    lease_owner text,
    lease_until double precision,
    last_cause text,
    last_error text,
    discard_reason text,
    updated_at double precision NOT NULL
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_cost_limit = 10000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE INDEX events_due ON events (next_attempt_at, id) WHERE state = 'pending';

CREATE INDEX events_user ON events (source, external_id, state, id);

CREATE INDEX events_leases ON events (lease_until) WHERE state = 'in_flight';

CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    event_ids bigint[] NOT NULL,
    reason text NOT NULL,
    detail jsonb NOT NULL
);

CREATE TABLE attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    external_id text NOT NULL,
    event_ids bigint[] NOT NULL,
    at double precision NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('done', 'retry', 'dead')),
    cause text,
    error text,
    sent json NOT NULL
);

CREATE INDEX attempts_user ON attempts (source, external_id, id);

CREATE TABLE heartbeat (id integer PRIMARY KEY CHECK (id = 1), at double precision NOT NULL);

CREATE TABLE pushed_extensions (
    source text NOT NULL,
    external_id text NOT NULL,
    extension text NOT NULL,
    position integer NOT NULL,
    record jsonb NOT NULL,
    pushed_at double precision NOT NULL,
    PRIMARY KEY (source, external_id, extension)
);

CREATE TABLE verba_users (
    source text NOT NULL,
    external_id text NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (source, external_id)
);
