-- The size limit (README "Big logs"): past LOGS_MAX_BYTES a log keeps its first
-- LOGS_HEAD_BYTES and its last LOGS_TAIL_BYTES, by part, with one marker line between.
--
-- The ingest keeps the count, and cuts while the job streams, so the parts stored for a log
-- never exceed the limit by more than the batch in hand. Every column has a constant
-- default: adding them rewrites no row of an existing table.
ALTER TABLE logs
    -- Bytes of every part the ingest stored for the log (counted in the statement that stores
    -- the batch; elided parts included). Past LOGS_MAX_BYTES the log is cut.
    ADD COLUMN received_bytes bigint  NOT NULL DEFAULT 0,
    -- Once cut: parts numbered below elided_from are the head, parts from tail_from on are
    -- the tail (a ring of the newest parts), and the numbers in between are left out: such a
    -- part is counted and deleted in the transaction that stored it. NULL: not cut.
    ADD COLUMN elided_from    integer,
    ADD COLUMN tail_from      integer,
    -- Bytes of the stored head and tail parts, so a batch needs no scan of the parts.
    ADD COLUMN head_bytes     bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tail_bytes     bigint  NOT NULL DEFAULT 0,
    -- What was left out, as the marker line and GET /logs/:id `truncated` report it.
    ADD COLUMN elided_bytes   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN elided_parts   bigint  NOT NULL DEFAULT 0,
    ADD CONSTRAINT logs_cut_ordered
        CHECK (elided_from IS NULL OR (tail_from IS NOT NULL AND elided_from < tail_from));
