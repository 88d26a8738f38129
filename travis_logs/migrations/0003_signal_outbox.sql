-- Signals the ingest owes to log workflows. A batch writes its transition refs here in the
-- transaction that stores its parts; the row is deleted once Temporal accepted the signal.
-- A process that dies in between leaves the row, and any ingest process resends it.
CREATE TABLE signal_outbox (
    id         bigserial PRIMARY KEY,
    job_id     bigint      NOT NULL,
    -- [{"number": n, "size": octets, "final": bool}, ...]: never the content (claim check).
    refs       jsonb       NOT NULL,
    -- When the row was written or last claimed for a resend; stale rows are resent.
    claimed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signal_outbox_claimed_at ON signal_outbox (claimed_at);
