-- Open circuit breakers of the target, one row per connector instance (connector/delivery/breaker.py),
-- for `connector status`; the row goes when the breaker closes. Written once: both dialects read it.

CREATE TABLE breakers (
    instance text PRIMARY KEY,
    opened_at double precision NOT NULL,
    probed_at double precision,
    error text,
    updated_at double precision NOT NULL
);
