-- Each drift check (connector/ops/drift.py): when, how much it checked, the drift it found by kind,
-- and what it queued for repair; `connector status` and the metrics show the last one.

CREATE TABLE drift_runs (
    started_at double precision PRIMARY KEY,
    finished_at double precision NOT NULL,
    users integer NOT NULL,
    extensions integer NOT NULL,
    counts text NOT NULL,
    unchecked integer NOT NULL,
    repaired integer,
    trigger text NOT NULL
);
