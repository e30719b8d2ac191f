-- Pushed extensions keep their order in a position column, as on PostgreSQL, instead of by rowid.

ALTER TABLE pushed_extensions ADD COLUMN position INTEGER NOT NULL DEFAULT 0;

UPDATE pushed_extensions SET position = rowid;
