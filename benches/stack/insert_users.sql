-- $1 users in one statement (the caller's one transaction), ids "<$2>-<n>", values shaped like
-- the API's so that every record normalizes: the nationality, its phones, address and time zone
-- rotate over 14 countries, names and dates vary with n.
INSERT INTO users (
    id, gender, title, first_name, last_name, email, username, date_of_birth, registered_at,
    phone, cell, street_number, street_name, city, state, country, postcode, latitude, longitude,
    timezone_offset, timezone_description, national_id_name, national_id_value,
    picture_large, picture_medium, picture_thumbnail, nat, raw, source_api_version, age, id_source
)
SELECT
    $2::text || '-' || g,
    CASE WHEN g % 2 = 0 THEN 'female' ELSE 'male' END,
    (ARRAY['Ms', 'Mr', 'Mrs', 'Dr'])[1 + g % 4],
    (ARRAY['anna', 'Ben', 'CLARA', 'jean-luc', 'Marie-Claire', 'oskar', 'emma', 'noah',
           'sofia', 'Mateo', 'HUGO', 'ida', 'nils', 'Zoe', 'liam', 'Ava', 'karl'])[1 + g % 17],
    (ARRAY['Schneider', 'Dubois', 'Smith', 'García', 'de Vries', 'Müller', 'Brown', 'Hansen',
           'Murphy', 'Silva', 'Hernández', 'Olsen', 'Taylor'])[1 + g % 13],
    'user' || g || '@example.com',
    'purplebird' || g,
    timestamptz '1950-01-01 04:05:06+00' + (g % 18000) * interval '1 day',
    timestamptz '2005-01-01 00:00:00+00' + (g % 600000) * interval '17 minutes',
    n.phone, n.cell, (1 + g % 9999)::text, 'Lindenstraße', n.city, n.state, n.country,
    n.postcode, n.lat, n.lon, n.tz_offset, n.tz_description, NULL, NULL,
    'https://randomuser.me/api/portraits/women/' || g % 100 || '.jpg',
    'https://randomuser.me/api/portraits/med/women/' || g % 100 || '.jpg',
    'https://randomuser.me/api/portraits/thumb/women/' || g % 100 || '.jpg',
    n.nat, jsonb_build_object('login', jsonb_build_object('uuid', $2::text || '-' || g)), '1.4',
    18 + g % 57, 'login_uuid'
FROM generate_series(1, $1::int) AS g
JOIN (VALUES
    (0, 'DE', 'Germany', '0171-2345678', '0172-3456789', 'Berlin', 'Berlin', '10115', '+1:00',
        'Brussels, Copenhagen, Madrid, Paris', 52.52, 13.405),
    (1, 'FR', 'France', '01-23-45-67-89', '06-57-18-68-96', 'Dijon', 'Marne', '21000', '+1:00',
        'Brussels, Copenhagen, Madrid, Paris', 47.322, 5.041),
    (2, 'GB', 'United Kingdom', '017683 39866', '0776-997-038', 'Liverpool', 'Hertfordshire',
        'K47 1GX', '0:00', 'Western Europe Time, London, Lisbon, Casablanca', 53.41, -2.98),
    (3, 'ES', 'Spain', '933-748-714', '610-727-153', 'Lugo', 'Aragón', '50243', '+1:00',
        'Brussels, Copenhagen, Madrid, Paris', 43.01, -7.56),
    (4, 'NL', 'Netherlands', '(381)-409-3519', '(544)-604-9955', 'Daarlerveen', 'Zeeland',
        '6161', '+1:00', 'Brussels, Copenhagen, Madrid, Paris', 52.44, 6.58),
    (5, 'CH', 'Switzerland', '079 468 64 28', '078 437 82 70', 'Dürnten', 'Schaffhausen', '4977',
        '+1:00', 'Brussels, Copenhagen, Madrid, Paris', 47.28, 8.84),
    (6, 'AU', 'Australia', '01-6022-1209', '0486-209-164', 'Gladstone', 'Queensland', '4680',
        '+10:00', 'Eastern Australia, Guam, Vladivostok', -23.84, 151.25),
    (7, 'US', 'United States', '(188)-084-9627', '(142)-150-9944', 'Cape Coral', 'Florida',
        '33904', '-5:00', 'Eastern Time (US & Canada), Bogota, Lima', 26.56, -81.94),
    (8, 'CA', 'Canada', '019-478-6485', '440-485-0430', 'Halifax', 'Nova Scotia', 'B3H 4R2',
        '-4:00', 'Atlantic Time (Canada), Caracas, La Paz', 44.65, -63.57),
    (9, 'NO', 'Norway', '57149519', '92067683', 'Rød', 'Hedmark', '9302', '+1:00',
        'Brussels, Copenhagen, Madrid, Paris', 60.79, 11.07),
    (10, 'DK', 'Denmark', '62386730', '43809706', 'Hornbæk', 'Sjælland', '3100', '+1:00',
        'Brussels, Copenhagen, Madrid, Paris', 56.09, 12.46),
    (11, 'IE', 'Ireland', '051-214-8205', '081-366-2285', 'Fermoy', 'Cork', 'P61', '0:00',
        'Western Europe Time, London, Lisbon, Casablanca', 52.14, -8.28),
    (12, 'BR', 'Brazil', '(28) 7968-1772', '(37) 0185-1210', 'Rondonópolis', 'Mato Grosso',
        '93846', '-3:00', 'Brazil, Buenos Aires, Georgetown', -16.47, -54.64),
    (13, 'MX', 'Mexico', '(631) 212 7425', '(643) 727 9373', 'Los Volcanes', 'Hidalgo', '94167',
        '-6:00', 'Central Time (US & Canada), Mexico City', 20.1, -98.76)
) AS n (k, nat, country, phone, cell, city, state, postcode, tz_offset, tz_description, lat, lon)
    ON n.k = g % 14
