-- The instances a live one's heartbeat counted dead (connector/store/instances.py): their row in `instances`
-- goes, with their claims, locks, tasks and breaker, but this record stays, so that `connector status` shows them,
-- until the instance registers again or an operator runs `connector instances forget NAME`.
-- Written once: both dialects read it. Times are the database's clock (Unix seconds).

CREATE TABLE dead_instances (
    name text PRIMARY KEY,
    run text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    reaped_at double precision NOT NULL,
    reaped_by text NOT NULL,
    released integer NOT NULL
);
