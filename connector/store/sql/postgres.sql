-- PostgreSQL's side of the queries that differ per dialect (sqlite.sql has the same names).
-- Lists are passed as arrays; arrays are read back as JSON text, as on SQLite.

-- expire_leases --
-- Users whose advisory lock is taken (a worker is settling them right now) keep their lease.
WITH expired AS (
    SELECT DISTINCT source, external_id FROM events WHERE state = 'in_flight' AND lease_until < %(now)s
), unlocked AS (
    SELECT source, external_id FROM expired
    WHERE pg_try_advisory_xact_lock(hashtext(source || chr(31) || external_id))
)
UPDATE events AS e SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %(at)s
FROM unlocked AS u
WHERE e.source = u.source AND e.external_id = u.external_id AND e.state = 'in_flight' AND e.lease_until < %(now)s

-- pick_user --
-- The oldest due event that is its user's oldest pending one, of a user with nothing in flight and no held event
-- (its pending events, older or newer, wait until an operator approves or discards the held one); a head another claimer
-- has locked is skipped, not waited for. The held check is a correlated subquery, probing events_user once per row:
-- as NOT EXISTS it was planned as an anti join against a sequential scan of every event (no index leads with
-- held events), here and in the shared queries that ask it.
SELECT e.id, e.source, e.external_id FROM events AS e
WHERE e.state = 'pending' AND e.next_attempt_at <= %(now)s AND e.id <> ALL(%(skipped)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM events AS o WHERE o.source = e.source AND o.external_id = e.external_id
                  AND o.state = 'pending' AND o.id < e.id)
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = e.source AND f.external_id = e.external_id
                  AND f.state = 'in_flight')
  AND (SELECT min(h.id) FROM events AS h WHERE h.source = e.source AND h.external_id = e.external_id
       AND h.state = 'held') IS NULL
ORDER BY e.next_attempt_at, e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED

-- oldest_pending_at --
-- Since each was accepted, or queued again by a replay or an approval. A pending event that waits behind a held event
-- of its user waits for an operator, as the held one does: not counted (waiting_behind_held counts them). Each state is
-- read alone, through its partial index (events_due, events_leases: `state IN (...)` scanned the whole table); the
-- pending events are sorted first and the held check (a probe of events_user) runs in that order, stopping at the
-- first that waits for no held event (OFFSET 0 keeps the subquery whole, so that the check does not run on every
-- pending event before the sort).
SELECT min(o.at) AS oldest FROM (
    SELECT (SELECT p.at FROM (SELECT coalesce(queued_at, accepted_at) AS at, id, source, external_id FROM events
                              WHERE state = 'pending' ORDER BY 1 OFFSET 0) AS p
            WHERE (SELECT min(h.id) FROM events AS h WHERE h.source = p.source AND h.external_id = p.external_id
                   AND h.state = 'held') IS NULL
            ORDER BY p.at LIMIT 1) AS at
    UNION ALL
    SELECT min(coalesce(queued_at, accepted_at)) FROM events WHERE state = 'in_flight'
) AS o

-- add_attempt --
INSERT INTO attempts (source, external_id, event_ids, at, outcome, cause, error, sent)
VALUES (%s, %s, %s::bigint[], %s, %s, %s, %s, %s)

-- attempts_of_event --
SELECT a.at, array_to_json(a.event_ids) AS event_ids, a.outcome, a.cause, a.error, a.sent FROM attempts AS a
JOIN events AS e ON e.source = a.source AND e.external_id = a.external_id
WHERE e.id = %s AND e.id = ANY(a.event_ids)
ORDER BY a.id

-- requeue --
-- Dead, held or discarded events, and done events of an open conflict; the i-th (by id, from 0) is due at
-- now + i * spacing. A discarded one loses its discard reason (the audit keeps it).
-- A concurrent requeue that changed an event first fails the state check on the re-read row.
UPDATE events AS e SET state = 'pending', attempts = 0, next_attempt_at = %(now)s + chosen.i * %(spacing)s,
    updated_at = %(at)s, queued_at = %(now)s + chosen.i * %(spacing)s, approved = CASE WHEN %(approve)s THEN 1 ELSE e.approved END,
    forced = 1, discard_reason = NULL
FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM events
    WHERE id = ANY(%(ids)s::bigint[])
      AND (state IN ('dead', 'held', 'discarded') OR (state = 'done' AND id IN (SELECT event_id FROM extension_conflicts)))
) AS chosen
WHERE e.id = chosen.id AND e.state IN ('dead', 'held', 'discarded', 'done')

-- discard --
UPDATE events SET state = 'discarded', discard_reason = %s, updated_at = %s
WHERE id = ANY(%s::bigint[]) AND state IN ('dead', 'held')

-- add_audit --
INSERT INTO audit (at, actor, action, event_ids, reason, detail) VALUES (%s, %s, %s, %s::bigint[], %s, %s)
RETURNING id

-- list_audit --
SELECT id, at, actor, action, array_to_json(event_ids) AS event_ids, reason, detail FROM audit
WHERE at >= coalesce(%s::double precision, at) ORDER BY id DESC LIMIT %s

-- audit_of_event --
SELECT id, at, actor, action, array_to_json(event_ids) AS event_ids, reason, detail FROM audit
WHERE %s = ANY(event_ids) ORDER BY id

-- current_events --
-- current_event of each of these users of one source that has one.
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at
FROM events WHERE id IN (
    SELECT max(id) FROM events
    WHERE source = %s AND external_id = ANY(%s::text[]) AND state NOT IN ('held', 'discarded')
    GROUP BY external_id)

-- verba_user_ids --
SELECT external_id, user_id FROM verba_users WHERE source = %s AND external_id = ANY(%s::text[])

-- pushed_extensions_of --
-- pushed_extensions of each of these users of one source, in push order.
SELECT external_id, record FROM pushed_extensions WHERE source = %s AND external_id = ANY(%s::text[])
ORDER BY external_id, position, extension

-- ldap_entries_by_id --
SELECT external_id, digest, active, groups, state FROM ldap_entries
WHERE directory = %s AND external_id = ANY(%s::text[])

-- ldap_digests --
SELECT external_id, digest FROM ldap_entries WHERE directory = %s AND external_id = ANY(%s::text[])

-- ldap_ids_in_groups --
SELECT external_id FROM ldap_entries WHERE directory = %s AND groups ?| %s::text[]

-- ldap_expiries --
SELECT external_id, state ->> 'expiresAt' AS expires FROM ldap_entries
WHERE directory = %s AND active AND state ? 'expiresAt'

-- lock_watermark --
-- The row lock makes concurrent pollers of one directory take turns; the loser sees a new version.
SELECT version FROM ldap_watermarks WHERE directory = %s FOR UPDATE

-- lock_source --
-- One row per source, locked until commit: concurrent stop-recording decisions count in turn.
INSERT INTO stop_recording_sources (source) VALUES (%s)
ON CONFLICT (source) DO UPDATE SET source = excluded.source

-- scim_get_many --
SELECT r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified
FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s
  AND r.id = ANY(%s::text[]) ORDER BY r.pk

-- scim_groups_of --
SELECT v.value AS member, g.id, g.display FROM scim_values v JOIN scim_resources g ON g.pk = v.resource_pk
WHERE g.client = %s AND g.resource_type = 'Group' AND v.attr = 'members.value'
  AND v.folded = ANY(%s::text[]) ORDER BY g.pk, v.idx

-- user_name --
-- The userName in an event's state, for filters.
state_json ->> 'userName'

-- expedite --
-- Pending events that backed off after failures of these causes are due at once.
UPDATE events SET next_attempt_at = %s, updated_at = %s
WHERE state = 'pending' AND next_attempt_at > %s AND last_cause = ANY(%s::text[])

-- now --
-- The database's clock, Unix time in seconds: instances' liveness is judged by it alone.
SELECT extract(epoch FROM clock_timestamp())::double precision AS now

-- table_names --
-- The store's tables, to tell an empty store from another program's database.
SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()

-- released --
-- The extensions a push released (a list parameter), for `wake`.
SELECT unnest(%(released)s::text[])

-- owners --
SELECT extension, verba_user_id FROM extension_owners WHERE extension = ANY(%s::text[])
