-- Makes this session the one replaying a dead-letter topic, until it disconnects: two replays at
-- once would both find a dead letter unreplayed and both produce it. $1 dead-letter topic.
SELECT pg_try_advisory_lock(hashtextextended('userstream dead-letter replay ' || $1, 0))
