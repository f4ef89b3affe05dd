-- One small transaction of the latency load: a new street number for the users $2.
UPDATE users SET street_number = $1 WHERE id = ANY($2)
