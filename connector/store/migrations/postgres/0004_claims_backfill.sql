-- Claims backfilled from what was pushed recording (after the shared 0004's tables).

INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
    SELECT extension, source, external_id, (record->>'user_id')::bigint, NULL, pushed_at FROM pushed_extensions
    WHERE (record->>'voice')::boolean OR (record->>'im')::boolean OR (record->>'video')::boolean
      OR (record->>'screen_capture_enabled')::boolean;
