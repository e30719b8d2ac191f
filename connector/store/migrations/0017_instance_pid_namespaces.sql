-- The process namespace each instance's pid belongs to (connector/liveness.py `pid_namespace`: the host's boot id
-- and the pid namespace's inode), so that a second start tells its own host's processes from those of another
-- container with the same host name. NULL (unknown, or a row from before): the liveness timeout alone decides.
-- Written once: both dialects read it.

ALTER TABLE instances ADD COLUMN pid_namespace text;
