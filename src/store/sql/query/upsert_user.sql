-- One user of a page. A row whose content is unchanged is left alone entirely (no new row
-- version, no trigger, no change logged), which is what makes re-fetching cheap and silent.
INSERT INTO users AS u (
    id, gender, title, first_name, last_name, email, username, date_of_birth, registered_at,
    phone, cell, street_number, street_name, city, state, country, postcode, latitude, longitude,
    timezone_offset, timezone_description, national_id_name, national_id_value,
    picture_large, picture_medium, picture_thumbnail, nat, raw,
    source_api_version, age, id_source
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9,
    $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
    $20, $21, $22, $23,
    $24, $25, $26, $27, $28,
    $29, $30, $31
)
ON CONFLICT (id) DO UPDATE SET
    gender = EXCLUDED.gender,
    title = EXCLUDED.title,
    first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name,
    email = EXCLUDED.email,
    username = EXCLUDED.username,
    date_of_birth = EXCLUDED.date_of_birth,
    registered_at = EXCLUDED.registered_at,
    phone = EXCLUDED.phone,
    cell = EXCLUDED.cell,
    street_number = EXCLUDED.street_number,
    street_name = EXCLUDED.street_name,
    city = EXCLUDED.city,
    state = EXCLUDED.state,
    country = EXCLUDED.country,
    postcode = EXCLUDED.postcode,
    latitude = EXCLUDED.latitude,
    longitude = EXCLUDED.longitude,
    timezone_offset = EXCLUDED.timezone_offset,
    timezone_description = EXCLUDED.timezone_description,
    national_id_name = EXCLUDED.national_id_name,
    national_id_value = EXCLUDED.national_id_value,
    picture_large = EXCLUDED.picture_large,
    picture_medium = EXCLUDED.picture_medium,
    picture_thumbnail = EXCLUDED.picture_thumbnail,
    nat = EXCLUDED.nat,
    raw = EXCLUDED.raw,
    source_api_version = EXCLUDED.source_api_version,
    age = EXCLUDED.age,
    id_source = EXCLUDED.id_source
WHERE (
    u.gender, u.title, u.first_name, u.last_name, u.email, u.username, u.date_of_birth,
    u.registered_at, u.phone, u.cell, u.street_number, u.street_name, u.city, u.state,
    u.country, u.postcode, u.latitude, u.longitude, u.timezone_offset, u.timezone_description,
    u.national_id_name, u.national_id_value, u.picture_large, u.picture_medium,
    u.picture_thumbnail, u.nat, u.raw, u.source_api_version, u.age, u.id_source
) IS DISTINCT FROM (
    EXCLUDED.gender, EXCLUDED.title, EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email,
    EXCLUDED.username, EXCLUDED.date_of_birth, EXCLUDED.registered_at, EXCLUDED.phone,
    EXCLUDED.cell, EXCLUDED.street_number, EXCLUDED.street_name, EXCLUDED.city, EXCLUDED.state,
    EXCLUDED.country, EXCLUDED.postcode, EXCLUDED.latitude, EXCLUDED.longitude,
    EXCLUDED.timezone_offset, EXCLUDED.timezone_description, EXCLUDED.national_id_name,
    EXCLUDED.national_id_value, EXCLUDED.picture_large, EXCLUDED.picture_medium,
    EXCLUDED.picture_thumbnail, EXCLUDED.nat, EXCLUDED.raw, EXCLUDED.source_api_version,
    EXCLUDED.age, EXCLUDED.id_source
)
