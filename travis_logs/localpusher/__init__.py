"""A Pusher-protocol server for development and tests (`travis-logs pusher-server`).

It speaks what the `pusher` package and pusher-js speak (HTTP events API, WebSocket
protocol 7, existence webhooks) for one app, in one process, in memory. It is not a
replacement for Pusher Channels or soketi in production.
"""
