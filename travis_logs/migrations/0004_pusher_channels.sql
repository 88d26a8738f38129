-- Pusher channel occupancy from the existence webhooks (reference §3 "Existence gate").
-- The original kept `logs:channel-occupied:<channel>` in Redis with a 6 h expiry; a row here
-- is that key: present and unexpired means somebody watches the channel.

CREATE TABLE pusher_channels (
    channel    text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Expired rows are swept when webhooks arrive.
CREATE INDEX pusher_channels_expires_at ON pusher_channels (expires_at);
