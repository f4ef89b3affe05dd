-- A change carries what downstream needs of the version it replaces, so that the processor can
-- retire the user's old `users_by_country` row with a blind write instead of reading where the
-- user was: the fields that row's key is computed from (the country code comes from `nat`, else
-- `country`, else a US `national_id_name`; the clustering key from `registered_at`).
--
-- Filled for 'u' and 'd' (a renamed key's 'd' too); null for 'c', which replaces nothing.
ALTER TABLE user_changes ADD COLUMN IF NOT EXISTS before jsonb;

-- Settings pinned as in user_change_image: the trigger runs in the writer's session.
CREATE OR REPLACE FUNCTION user_change_before_image(u users) RETURNS jsonb
LANGUAGE sql STABLE
SET TimeZone = 'UTC'
AS $$
    SELECT jsonb_build_object(
        'nat', u.nat,
        'country', u.country,
        'national_id_name', u.national_id_name,
        'registered_at', u.registered_at
    )
$$;

-- 007's trigger function, with the before image.
CREATE OR REPLACE FUNCTION users_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    image jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('c', NEW.id, user_change_image(NEW), user_next_source_ts(NEW.id));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO user_changes (op, user_id, after, before, source_ts)
        VALUES ('d', OLD.id, NULL, user_change_before_image(OLD), user_next_source_ts(OLD.id));
    ELSIF OLD.id IS DISTINCT FROM NEW.id THEN
        -- Downstream is keyed by id: a renamed key is the old user gone and a new one created.
        INSERT INTO user_changes (op, user_id, after, before, source_ts)
        VALUES ('d', OLD.id, NULL, user_change_before_image(OLD), user_next_source_ts(OLD.id));
        INSERT INTO user_changes (op, user_id, after, source_ts)
        VALUES ('c', NEW.id, user_change_image(NEW), user_next_source_ts(NEW.id));
    ELSE
        image := user_change_image(NEW);
        -- Only what downstream sees counts: an update of raw alone (say, a new password) has
        -- nothing to carry.
        IF image IS DISTINCT FROM user_change_image(OLD) THEN
            INSERT INTO user_changes (op, user_id, after, before, source_ts)
            VALUES ('u', NEW.id, image, user_change_before_image(OLD),
                    user_next_source_ts(NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
