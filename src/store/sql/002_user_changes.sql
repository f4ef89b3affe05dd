-- The change log the CDC poller reads, written by a trigger in the same transaction as the
-- change to `users`, so a change is logged if and only if it commits.

CREATE TABLE IF NOT EXISTS user_changes (
    -- The writing transaction; the poller's watermark is over these, never over `seq`, because
    -- transactions commit in a different order than they are assigned ids and sequence values.
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    -- Orders the changes within one transaction.
    seq       bigint GENERATED ALWAYS AS IDENTITY,
    op        char(1) NOT NULL CHECK (op IN ('c', 'u', 'd')),
    user_id   text NOT NULL,
    -- clock_timestamp(), not now(): writers of one row are serialized by its row lock, so the
    -- wall-clock time of the change orders the versions of one user in commit order, while the
    -- transaction start time would not. Cassandra's last-write-wins relies on this.
    source_ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The typed columns after the change (no raw JSON, no credential); null for a delete.
    after     jsonb,
    PRIMARY KEY (xid, seq),
    CHECK ((op = 'd') = (after IS NULL))
);

-- What travels downstream: an explicit list of the typed columns, so a column added to `users`
-- later (or the raw JSON with its credentials) never leaks into the log by accident. Settings are
-- pinned because the trigger runs in the writer's session: times are rendered in UTC and doubles
-- with every digit whatever that session configured.
CREATE OR REPLACE FUNCTION user_change_image(u users) RETURNS jsonb
LANGUAGE sql STABLE
SET TimeZone = 'UTC'
SET extra_float_digits = 1
AS $$
    SELECT jsonb_build_object(
        'id', u.id,
        'gender', u.gender,
        'title', u.title,
        'first_name', u.first_name,
        'last_name', u.last_name,
        'email', u.email,
        'username', u.username,
        'date_of_birth', u.date_of_birth,
        'registered_at', u.registered_at,
        'phone', u.phone,
        'cell', u.cell,
        'street_number', u.street_number,
        'street_name', u.street_name,
        'city', u.city,
        'state', u.state,
        'country', u.country,
        'postcode', u.postcode,
        'latitude', u.latitude,
        'longitude', u.longitude,
        'timezone_offset', u.timezone_offset,
        'timezone_description', u.timezone_description,
        'national_id_name', u.national_id_name,
        'national_id_value', u.national_id_value,
        'picture_large', u.picture_large,
        'picture_medium', u.picture_medium,
        'picture_thumbnail', u.picture_thumbnail,
        'nat', u.nat
    )
$$;

CREATE OR REPLACE FUNCTION users_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    image jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_changes (op, user_id, after) VALUES ('c', NEW.id, user_change_image(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO user_changes (op, user_id, after) VALUES ('d', OLD.id, NULL);
    ELSIF OLD.id IS DISTINCT FROM NEW.id THEN
        -- Downstream is keyed by id: a renamed key is the old user gone and a new one created.
        INSERT INTO user_changes (op, user_id, after) VALUES ('d', OLD.id, NULL);
        INSERT INTO user_changes (op, user_id, after) VALUES ('c', NEW.id, user_change_image(NEW));
    ELSE
        image := user_change_image(NEW);
        -- Only what downstream sees counts: an update of raw alone (say, a new password) has
        -- nothing to carry.
        IF image IS DISTINCT FROM user_change_image(OLD) THEN
            INSERT INTO user_changes (op, user_id, after) VALUES ('u', NEW.id, image);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS users_log_change ON users;
CREATE TRIGGER users_log_change
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_log_change();

-- TRUNCATE fires no row triggers: it would delete users without a trace in the log, and they
-- would live on in Cassandra. Deleting rows is the way.
CREATE OR REPLACE FUNCTION users_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE on users bypasses the change log; use DELETE instead'
        USING ERRCODE = 'feature_not_supported';
END
$$;

DROP TRIGGER IF EXISTS users_refuse_truncate ON users;
CREATE TRIGGER users_refuse_truncate
    BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_refuse_truncate();
