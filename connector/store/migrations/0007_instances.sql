-- The connector instances sharing the store (connector/liveness.py), and which one runs each task
-- that only one may run at a time (polling an LDAP directory, the drift check). Written once: both dialects read it.

-- One row per live instance; `heartbeat_at` is the database's clock. An instance silent for
-- [instance] liveness_seconds is dead: the next heartbeat of a live one removes its row and gives
-- its claims back. `run` names this start of the instance: its claims' lease owners are "<run>/<worker>".
CREATE TABLE instances (
    name text PRIMARY KEY,
    run text NOT NULL UNIQUE,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL
);

-- The instance that runs each such task ("ldap.NAME", "drift"); another takes over once it is dead.
CREATE TABLE leaders (
    task text PRIMARY KEY,
    instance text NOT NULL,
    since double precision NOT NULL
);
