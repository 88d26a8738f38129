"""Live log parts to browsers over the Pusher protocol: publisher, transport, occupancy."""
