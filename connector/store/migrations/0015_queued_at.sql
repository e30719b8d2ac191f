-- When a replay or an approval last queued the event for delivery again (Unix seconds); NULL: queued when accepted.
-- The age of the oldest undelivered event counts from it, so a replay of old dead letters (or an approval of events
-- held for hours) does not look like delivery falling behind. Written once: both dialects read it.

ALTER TABLE events ADD COLUMN queued_at double precision;
