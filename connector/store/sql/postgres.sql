-- PostgreSQL's side of the queries that differ per dialect (sqlite.sql has the same names).
-- Lists are passed as arrays; arrays are read back as JSON text, as on SQLite.

-- insert_event --
-- A pending event of a user with a held event waits behind its first one. That one is locked FOR SHARE until the
-- insert commits, so that an approval or a discard of it, which locks it to write it, waits for the insert and then
-- sees this event when it lets the user's events go (`wait_behind_held`, in its transaction). SKIP LOCKED: one that an
-- approval or a discard has locked already is passed over as not held (the event waits behind the next held one, or
-- nothing), never waited for: an insert waits for no lock, so a batch of many users' changes (a SCIM group change, an
-- LDAP poll) cannot deadlock with an approval of several users' held events. Never an event left waiting behind an
-- event no longer held; if the approval is rolled back instead, the event waits behind nothing, and the claim that
-- picks it finds the user held (claim_user) and makes it wait.
INSERT INTO events (idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, next_attempt_at, updated_at, forced, last_error, waits_behind)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
        (SELECT h.id FROM events AS h WHERE h.source = %s AND h.external_id = %s AND h.state = 'held'
         ORDER BY h.id LIMIT 1 FOR SHARE SKIP LOCKED))
ON CONFLICT (idem_key) DO NOTHING
RETURNING id

-- queued_behind_held --
-- These events (%(ids)s), queued by this transaction (a wake-up, a recheck), wait behind the first held event of
-- their user if pending, locked as in insert_event.
UPDATE events AS e SET waits_behind = (SELECT h.id FROM events AS h
                                       WHERE h.source = e.source AND h.external_id = e.external_id AND h.state = 'held'
                                       ORDER BY h.id LIMIT 1 FOR SHARE SKIP LOCKED)
WHERE e.id = ANY(%(ids)s::bigint[]) AND e.state = 'pending'

-- wait_behind_held --
-- The pending and in-flight events of the users of these events (%(ids)s) wait behind the first held event of their
-- user, or behind nothing when it has none. Run under the queue's lock (exclusive, or shared with the user's lock),
-- which every write that holds an event or ends a hold takes: no held event of these users is created or decided
-- meanwhile, so none needs locking.
UPDATE events AS e SET waits_behind = (SELECT min(h.id) FROM events AS h
                                       WHERE h.source = e.source AND h.external_id = e.external_id AND h.state = 'held')
WHERE e.state IN ('pending', 'in_flight')
  AND (e.source, e.external_id) IN (SELECT source, external_id FROM events WHERE id = ANY(%(ids)s::bigint[]))

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

-- anything_to_claim --
-- Whether a claim may find a user: a due pending event that waits behind no held event of its user (see pick_user),
-- or an expired lease. The first due event is read in the order of the index on them (events_claimable), with LIMIT 1:
-- written as EXISTS, PostgreSQL scanned the whole table for it.
SELECT ((SELECT next_attempt_at FROM events WHERE state = 'pending' AND waits_behind IS NULL
         AND next_attempt_at <= %(now)s ORDER BY next_attempt_at LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM events WHERE state = 'in_flight' AND lease_until < %(now)s)) AS due

-- pick_user --
-- The oldest due event that is its user's oldest pending one, of a user with nothing in flight and no held event
-- (its pending events, older or newer, wait behind the held one until an operator approves or discards it: read
-- through events_claimable, the waiting ones are never read); a head another claimer has locked is skipped, not
-- waited for.
SELECT e.id, e.source, e.external_id FROM events AS e
WHERE e.state = 'pending' AND e.waits_behind IS NULL AND e.next_attempt_at <= %(now)s
  AND e.id <> ALL(%(skipped)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM events AS o WHERE o.source = e.source AND o.external_id = e.external_id
                  AND o.state = 'pending' AND o.id < e.id)
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = e.source AND f.external_id = e.external_id
                  AND f.state = 'in_flight')
ORDER BY e.next_attempt_at, e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED

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
WHERE id IN (SELECT audit_id FROM audit_events WHERE event_id = %s) ORDER BY id

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

-- ldap_census_due --
-- The LDAP directories of these events (a list) that are deletes about to be discarded (dead or held): their next
-- run takes a census (watcher.py), which knows again the users of those deletes still in scope; a run under way
-- stores nothing (its version moved) and polls again.
UPDATE ldap_watermarks SET cursor = cursor || '{"census_due": true}'::jsonb, version = version + 1
WHERE directory IN (SELECT source FROM events WHERE id = ANY(%s::bigint[]) AND kind = 'delete'
                    AND state IN ('dead', 'held'))

-- ldap_forget_digests --
-- The entries of the users of these events (a list) about to be discarded (dead or held) lose their digest: the
-- watcher stored them as those events had them, which Verba will not get, so their next read makes an event
-- whatever they hold then (a user disabled by mistake, restored with its old stamps, then disabled for good).
UPDATE ldap_entries SET digest = ''
WHERE (directory, external_id) IN (SELECT source, external_id FROM events
                                   WHERE id = ANY(%s::bigint[]) AND state IN ('dead', 'held'))

-- lock_watermark --
-- The row lock makes concurrent pollers of one directory take turns; the loser sees a new version.
SELECT version FROM ldap_watermarks WHERE directory = %s FOR UPDATE

-- lock_source --
-- One row per source, locked until commit: concurrent stop-recording decisions count in turn.
INSERT INTO stop_recording_sources (source) VALUES (%s)
ON CONFLICT (source) DO UPDATE SET source = excluded.source

-- scim_get_many --
SELECT r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified
FROM scim_resources r WHERE r.client = %s AND r.id = ANY(%s::text[]) ORDER BY r.pk

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
