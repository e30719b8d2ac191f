-- What mapping each instance loaded at its start (connector/mapping/loader.py `mapping_digest` of the file's text),
-- so that `connector status` tells an instance that maps users with an older mapping by content, not by the file's
-- time (a copy that keeps the old time, or a touch that changes nothing). NULL: an instance registered by a version
-- that recorded none (then the file's time decides). Written once: both dialects read it.

ALTER TABLE instances ADD COLUMN mapping_digest text;
