-- A pending or in-flight event names the first held event of its user, which it waits behind (NULL: none), so that a
-- claim reads the due events that wait for nothing (events_claimable) instead of checking every due event for a held
-- one of its user: thousands of events waiting behind held ones (a mass-change guard's) no longer slow every claim.
-- The store's writes keep it (queue.py's module docstring says which). Written once: both dialects read it.

ALTER TABLE events ADD COLUMN waits_behind bigint;

UPDATE events SET waits_behind = (SELECT min(h.id) FROM events AS h
                                  WHERE h.source = events.source AND h.external_id = events.external_id
                                    AND h.state = 'held')
WHERE state IN ('pending', 'in_flight')
  AND (source, external_id) IN (SELECT source, external_id FROM events WHERE state = 'held');

CREATE INDEX events_claimable ON events (next_attempt_at, id) WHERE state = 'pending' AND waits_behind IS NULL;
