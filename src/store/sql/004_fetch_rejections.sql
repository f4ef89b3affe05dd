-- Records the fetcher could not accept, with the reason, so that nothing it was sent goes
-- unaccounted for. The request (seed, page, page size) identifies the record at the API: asking
-- again returns the same record at the same index.

CREATE TABLE IF NOT EXISTS fetch_rejections (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rejected_at  timestamptz NOT NULL DEFAULT now(),
    seed         text NOT NULL,
    page         integer NOT NULL,
    page_size    integer NOT NULL,
    record_index integer NOT NULL,
    field        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    UNIQUE (seed, page, page_size, record_index)
);
