-- What each recording server answered the last applyExtensionConfiguration ([target] apply_configuration),
-- for `connector status` and the metrics. One row per server (its location name), replaced by each answer
-- that names it; `status` is its statusCode (OK: it took the extension table). Written once: both dialects
-- read it.

CREATE TABLE recorders (
    location text PRIMARY KEY,
    eid text,
    status text NOT NULL,
    message text,
    applied_at double precision NOT NULL,
    instance text NOT NULL
);
