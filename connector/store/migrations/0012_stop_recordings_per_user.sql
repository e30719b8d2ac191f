-- The stop-recording guard keeps one row per user, the time of its latest stop, instead of one per push:
-- a source's window is then counted along an index, not by a DISTINCT over every push in it.
-- Written once: both dialects read it. The key is named for the table's final name (PostgreSQL keeps it).

CREATE TABLE stop_recordings_latest (
    source text NOT NULL,
    external_id text NOT NULL,
    at double precision NOT NULL,
    CONSTRAINT stop_recordings_pkey PRIMARY KEY (source, external_id)
);

INSERT INTO stop_recordings_latest (source, external_id, at)
SELECT source, external_id, max(at) FROM stop_recordings GROUP BY source, external_id;

DROP TABLE stop_recordings;

ALTER TABLE stop_recordings_latest RENAME TO stop_recordings;

CREATE INDEX stop_recordings_window ON stop_recordings (source, at, external_id);
