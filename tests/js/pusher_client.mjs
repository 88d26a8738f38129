// Real pusher-js clients for the tests and bench/live.py, reporting as JSON lines on stdout.
//
// Usage: node pusher_client.mjs '<config JSON>'
//   config: {key, port, channels: [...], clients: 1, authEndpoint: null, frames: false,
//            brief: false}
// Lines: {"kind":"connected"|"subscribed"|"subscription_error"|"ready"|"event"|"frame"|"error",...}
// "event" carries what the application sees (data re-serialised with JSON.stringify, which keeps
// key order); "frame" (with frames: true) carries the data string exactly as the server sent it.
// With brief: true, "event" carries no data, only the publish stamp found at the start of _log.
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const require = createRequire(import.meta.url);
const Pusher = require("pusher-js");

const config = JSON.parse(process.argv[2]);
const clients = config.clients ?? 1;
const now = () => performance.timeOrigin + performance.now();
const emit = (line) => process.stdout.write(JSON.stringify(line) + "\n");

let pending = clients * config.channels.length;
const settled = () => {
  pending -= 1;
  if (pending === 0) emit({ kind: "ready" });
};

// bench/live.py puts the publish time first in the text: "t=<epoch ms>;...".
function stampOf(data) {
  const log = data && typeof data._log === "string" ? data._log : "";
  return log.startsWith("t=") ? parseFloat(log.slice(2)) : null;
}

function watchFrames(pusher, client) {
  // The transport's raw messages, before pusher-js parses the data string.
  pusher.connection.bind("connected", () => {
    pusher.connection.connection.transport.bind("message", (message) => {
      const parsed = JSON.parse(message.data);
      if (typeof parsed.data === "string" && !parsed.event.startsWith("pusher")) {
        emit({ kind: "frame", client, channel: parsed.channel, event: parsed.event, raw: parsed.data });
      }
    });
  });
}

function start(client) {
  const pusher = new Pusher(config.key, {
    cluster: "local",
    wsHost: "127.0.0.1",
    wsPort: config.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: { endpoint: config.authEndpoint ?? "http://127.0.0.1:9/unused", transport: "ajax" },
  });
  if (config.frames) watchFrames(pusher, client);
  pusher.connection.bind("connected", () => emit({ kind: "connected", client, socket_id: pusher.connection.socket_id }));
  pusher.connection.bind("error", (err) => emit({ kind: "error", client, error: JSON.stringify(err) }));
  for (const name of config.channels) {
    const channel = pusher.subscribe(name);
    channel.bind("pusher:subscription_succeeded", () => {
      emit({ kind: "subscribed", client, channel: name });
      settled();
    });
    channel.bind("pusher:subscription_error", (err) => {
      emit({ kind: "subscription_error", client, channel: name, status: err.status ?? null });
      settled();
    });
    channel.bind_global((event, data) => {
      if (event.startsWith("pusher:")) return;
      const t = now();
      if (config.brief) {
        emit({ kind: "event", client, channel: name, event, t, stamp: stampOf(data) });
      } else {
        emit({ kind: "event", client, channel: name, event, data: JSON.stringify(data), t });
      }
    });
  }
  return pusher;
}

const instances = Array.from({ length: clients }, (_, i) => start(i));
const stop = () => {
  for (const pusher of instances) pusher.disconnect();
  setTimeout(() => process.exit(0), 100);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
