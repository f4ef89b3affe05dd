-- A row's source time strictly increases from one version to the next, even when the database
-- host's clock steps back (an NTP step, a failover to a host that is behind). Cassandra keeps the
-- version with the greatest source time, so a newer version stamped with an older time would
-- lose to the stale one for good.
--
-- The newest source time given to each user id is kept here, and outlives the user: a user
-- deleted and inserted again must still come after its delete. Writers of one id queue on its
-- row here, so the times they take are ordered as they commit.
CREATE TABLE IF NOT EXISTS user_change_clock (
    user_id  text PRIMARY KEY,
    last_ts  timestamptz NOT NULL
);

-- The source time of the next change of `id`: the wall clock, or 1 µs past the id's previous
-- change if the clock reads earlier than that.
CREATE OR REPLACE FUNCTION user_next_source_ts(id text) RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
    INSERT INTO user_change_clock AS clock (user_id, last_ts)
    VALUES (id, clock_timestamp())
    ON CONFLICT (user_id) DO UPDATE
        SET last_ts = greatest(EXCLUDED.last_ts, clock.last_ts + interval '1 microsecond')
    RETURNING last_ts
$$;

CREATE OR REPLACE FUNCTION users_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    image jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('c', NEW.id, user_change_image(NEW), user_next_source_ts(NEW.id));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('d', OLD.id, NULL, user_next_source_ts(OLD.id));
    ELSIF OLD.id IS DISTINCT FROM NEW.id THEN
        -- Downstream is keyed by id: a renamed key is the old user gone and a new one created.
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('d', OLD.id, NULL, user_next_source_ts(OLD.id));
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('c', NEW.id, user_change_image(NEW), user_next_source_ts(NEW.id));
    ELSE
        image := user_change_image(NEW);
        -- Only what downstream sees counts: an update of raw alone (say, a new password) has
        -- nothing to carry.
        IF image IS DISTINCT FROM user_change_image(OLD) THEN
            INSERT INTO user_changes (op, user_id, after, source_ts)
            VALUES ('u', NEW.id, image, user_next_source_ts(NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
