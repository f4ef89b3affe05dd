-- The next batch of a snapshot: the ids of the users it selects after its checkpoint, in id
-- order. Read without locks; snapshot_emit.sql locks them and skips those deleted meanwhile.
-- $1 the checkpoint (null: from the start), $2 ids, $3 nationalities (upper case),
-- $4 countries (lower case); an empty list selects everyone. $5 the batch size.
SELECT u.id
FROM users u
WHERE ($1::text IS NULL OR u.id > $1::text)
  AND (cardinality($2::text[]) = 0 OR u.id = ANY ($2::text[]))
  AND (cardinality($3::text[]) = 0 OR upper(u.nat) = ANY ($3::text[]))
  AND (cardinality($4::text[]) = 0 OR lower(u.country) = ANY ($4::text[]))
ORDER BY u.id
LIMIT $5
