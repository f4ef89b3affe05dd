-- Every statement that writes the change log notifies channel `user_changes`, so the CDC poller
-- wakes when changes commit instead of at its next poll (PostgreSQL delivers a notification at
-- commit, and only once for identical ones within a transaction). The trigger is per statement:
-- one notification per INSERT, however many rows it writes. Nothing depends on it for
-- correctness; the poller still polls on an interval.

CREATE OR REPLACE FUNCTION user_changes_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('user_changes', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS user_changes_notify ON user_changes;
CREATE TRIGGER user_changes_notify
    AFTER INSERT ON user_changes
    FOR EACH STATEMENT EXECUTE FUNCTION user_changes_notify();
