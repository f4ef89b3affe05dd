-- Whether the replay ledger exists (migration 012; a database of an older release lacks it).
SELECT to_regclass('dead_letter_replays') IS NOT NULL
