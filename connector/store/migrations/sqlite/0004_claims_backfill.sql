-- Claims backfilled from what was pushed recording (after the shared 0004's tables).

INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
    SELECT extension, source, external_id, json_extract(record, '$.user_id'), NULL, pushed_at FROM pushed_extensions
    WHERE json_extract(record, '$.voice') OR json_extract(record, '$.im') OR json_extract(record, '$.video')
      OR json_extract(record, '$.screen_capture_enabled');
