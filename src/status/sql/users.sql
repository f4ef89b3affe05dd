-- How many users PostgreSQL holds.
SELECT count(*) FROM users
