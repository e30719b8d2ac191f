-- The newest scheduled drift check that failed (connector/ops/drift.py DriftSchedule: Verba failing as a whole mid-run,
-- a store error): `connector status`, `status --check` and the metrics show it until a check is recorded after it.

CREATE TABLE drift_failures (
    failed_at double precision PRIMARY KEY,
    started_at double precision NOT NULL,
    error text NOT NULL
);
