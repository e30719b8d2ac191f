-- The last health probe of the target each connector instance took (connector/ops/health.py: one cheap
-- authenticated call, listUsers), for `connector status`, which shows it with its age instead of calling
-- Verba itself. One row per instance, replaced by each probe; `cause` and `error` are NULL when Verba
-- answered. Written once: both dialects read it.

CREATE TABLE target_probes (
    instance text PRIMARY KEY,
    url text NOT NULL,
    probed_at double precision NOT NULL,
    seconds double precision NOT NULL,
    cause text,
    error text
);
