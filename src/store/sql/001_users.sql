-- The users as the fetcher stores them: one typed column per field of `model::UserRecord`, and
-- the record exactly as the API sent it in `raw` (credentials included: they never leave here).

CREATE TABLE IF NOT EXISTS users (
    id                   text PRIMARY KEY,
    gender               text,
    title                text,
    first_name           text,
    last_name            text,
    email                text,
    username             text,
    date_of_birth        timestamptz,
    registered_at        timestamptz,
    phone                text,
    cell                 text,
    street_number        text,
    street_name          text,
    city                 text,
    state                text,
    country              text,
    -- Text, not a number: several nationalities use letters and leading zeros.
    postcode             text,
    latitude             double precision,
    longitude            double precision,
    timezone_offset      text,
    timezone_description text,
    national_id_name     text,
    national_id_value    text,
    picture_large        text,
    picture_medium       text,
    picture_thumbnail    text,
    nat                  text,
    raw                  jsonb NOT NULL,
    -- When the fetcher first stored this user.
    fetched_at           timestamptz NOT NULL DEFAULT now(),
    -- When the row's content last changed (kept by the trigger below, whoever writes).
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION users_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS users_touch_updated_at ON users;
CREATE TRIGGER users_touch_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_touch_updated_at();
