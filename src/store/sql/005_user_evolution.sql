-- Value schema v2/v3: the API version that served a record, dob.age, and how the id was
-- obtained. Added as nullable columns, so rows stored before keep null (which is also what the
-- schemas' defaults say) and the fetcher fills them from its next fetch on.

ALTER TABLE users ADD COLUMN IF NOT EXISTS source_api_version text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS age bigint;
ALTER TABLE users ADD COLUMN IF NOT EXISTS id_source text;

-- The change image carries the new columns too (still an explicit list; see 002).
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
        'nat', u.nat,
        'source_api_version', u.source_api_version,
        'age', u.age,
        'id_source', u.id_source
    )
$$;
