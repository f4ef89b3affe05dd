-- How many users a snapshot still has to re-emit (the same selection as
-- snapshot_candidates.sql, without the limit), for its progress.
SELECT count(*)
FROM users u
WHERE ($1::text IS NULL OR u.id > $1::text)
  AND (cardinality($2::text[]) = 0 OR u.id = ANY ($2::text[]))
  AND (cardinality($3::text[]) = 0 OR upper(u.nat) = ANY ($3::text[]))
  AND (cardinality($4::text[]) = 0 OR lower(u.country) = ANY ($4::text[]))
