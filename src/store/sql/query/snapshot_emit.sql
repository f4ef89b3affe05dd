-- Logs an 'r' image of each user of $1 that still exists, as the trigger logs a change: the typed
-- columns only (user_change_image, never raw or credentials) and a source time from the user's
-- clock (user_next_source_ts).
--
-- FOR SHARE makes the image the row's newest committed version and keeps it so until this
-- transaction ends: a writer of the row that came first has committed (its change is older), a
-- row it deleted is skipped, and a writer that comes later waits and takes a later source time.
-- So the image's source time lies strictly between the row's last change and its next one: it
-- never overwrites a newer change, a row deleted meanwhile stays deleted, and, being newer than
-- the last change, it also fills columns that change wrote as null. Rows are locked in id order,
-- as the clock rows after them.
WITH locked AS (
    SELECT u AS row
    FROM users u
    WHERE u.id = ANY ($1::text[])
    ORDER BY u.id
    FOR SHARE
)
INSERT INTO user_changes (op, user_id, after, source_ts)
SELECT 'r', (l.row).id, user_change_image(l.row), user_next_source_ts((l.row).id)
FROM locked l
