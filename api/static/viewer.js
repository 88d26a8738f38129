// The log viewer: renders a job's log (as a whole; viewer-ranged.js reads a large one by range) (ANSI colours, travis_fold sections, #L<n> anchors)
// and follows it live over Pusher, applying parts in part-number order and filling gaps
// from GET /log-parts after every (re)subscription and whenever a later part shows one.
(function () {
  "use strict";

  const state = JSON.parse(document.getElementById("state").textContent);
  const logEl = document.getElementById("log");
  // Where parts are drawn: the log itself, or (a streaming log read by range) a box below the
  // rows read by range, whose lines go on from `liveFrom.lines`, after part `liveFrom.part`.
  let liveEl = logEl;
  const liveFrom = { part: -Infinity, lines: 0 };
  const statusEl = document.getElementById("status");
  const parts = new Map(); // part number -> content
  let finalSeen = false;
  let renderQueued = false;
  let anchorShown = false;

  const { MARKER, newStyle, styledLine, visible } = window.travisLogsAnsi;

  // --- lines and folds ----------------------------------------------------------------

  function lineElement(number, styled) {
    const div = document.createElement("div");
    div.className = "line";
    div.id = "L" + number;
    const a = document.createElement("a");
    a.className = "num";
    a.href = "#L" + number;
    a.textContent = String(number);
    div.appendChild(a);
    for (const s of styled) {
      const span = document.createElement("span");
      if (s.cls) span.className = s.cls;
      span.textContent = s.text;
      div.appendChild(span);
    }
    return div;
  }

  function openFold(stack, name, openNames) {
    const details = document.createElement("details");
    details.className = "fold";
    details.dataset.name = name;
    if (openNames.has(name)) details.open = true;
    const summary = document.createElement("summary");
    details.appendChild(summary);
    stack[stack.length - 1].appendChild(details);
    stack.push(details);
  }

  function closeFold(stack, name) {
    const at = stack.map((el) => el.dataset && el.dataset.name).lastIndexOf(name);
    if (at <= 0) return; // an end without its start: nothing to close
    for (const fold of stack.splice(at)) {
      if (!fold.firstChild.hasChildNodes()) fold.remove(); // a fold without lines
    }
  }

  function place(stack, div) {
    const top = stack[stack.length - 1];
    const summary = top.firstChild;
    if (top.tagName === "DETAILS" && !summary.hasChildNodes()) {
      const label = document.createElement("span");
      label.className = "fold-name";
      label.textContent = top.dataset.name;
      div.appendChild(label);
      summary.appendChild(div); // the fold's first line is its title
    } else if (top.tagName === "DETAILS") {
      top.appendChild(div);
    } else {
      chunkOf(top).appendChild(div);
    }
  }

  // Top-level lines go in blocks of CHUNK_LINES: appending a line then lays out one small
  // block, not a container of every line so far (which made live rendering quadratic).
  const CHUNK_LINES = 100;
  function chunkOf(root) {
    const last = root.lastElementChild;
    if (last && last.className === "chunk" && last.childElementCount < CHUNK_LINES) return last;
    const chunk = document.createElement("div");
    chunk.className = "chunk";
    root.appendChild(chunk);
    return chunk;
  }

  // The renderer appends text as it comes, so a live part costs O(that part): committed
  // lines stay in the DOM; only the unterminated last line (`tail`) is drawn provisionally
  // and drawn again when the rest of it arrives. A reload feeds the same text through the
  // same path in one call, so line numbers, folds and colours are the same live and after.
  let view = null;

  function newView(root, openNames) {
    const v = { root, stack: [root], style: newStyle(), number: liveFrom.lines, tail: "", tailNode: null };
    return Object.assign(v, { openNames, closed: false });
  }

  function commitLine(v, raw) {
    let marked = false;
    for (const m of raw.matchAll(MARKER)) {
      marked = true;
      if (m[1] !== "fold") continue;
      if (m[2] === "start") openFold(v.stack, m[3], v.openNames);
      else closeFold(v.stack, m[3]);
    }
    const line = raw.replace(MARKER, "");
    if (marked && !visible(line.replace(/\r/g, ""))) return;
    place(v.stack, lineElement(++v.number, styledLine(line, v.style)));
  }

  // The tail as a line of its own (fold markers take effect once the line is complete).
  function drawTail(v) {
    const line = v.tail.replace(MARKER, "");
    if (!visible(line.replace(/\r/g, ""))) return;
    v.tailNode = lineElement(v.number + 1, styledLine(line, Object.assign(newStyle(), v.style)));
    place(v.stack, v.tailNode);
  }

  function appendText(v, text, complete) {
    if (v.tailNode) {
      v.tailNode.remove();
      v.tailNode = null;
    }
    const lines = (v.tail + text).split("\n");
    v.tail = lines.pop();
    for (const raw of lines) commitLine(v, raw);
    if (complete && v.tail !== "") {
      commitLine(v, v.tail); // the log's last line, without a newline
      v.tail = "";
      v.closed = true; // text after this (a late part) continues that line: rebuild then
    }
    drawTail(v);
  }

  function currentlyOpen() {
    return new Set([...logEl.querySelectorAll("details.fold[open]")].map((d) => d.dataset.name));
  }

  const undrawn = new Set(); // numbers in `parts` not drawn yet
  let applied = -Infinity; // highest part number drawn
  let filledUpTo = -Infinity; // every part up to here that exists is in `parts` (from a fill)
  let rebuild = true;

  function complete() {
    return finalSeen || state.complete;
  }

  // Parts that may be drawn now, in order: the next number, or one whose missing
  // predecessors a fill showed not to exist. A part behind a gap waits for the fill.
  function drawable() {
    const ready = [];
    const breaks = new Map(); // part number -> the [first, last] numbers missing before it
    const waiting = [...undrawn].sort((a, b) => a - b);
    let last = applied;
    for (const n of waiting) {
      // Logs number their parts from 0 or 1; past that, a gap waits for a fill.
      const first = last === -Infinity && n <= 1;
      if (n !== last + 1 && !first && n - 1 > filledUpTo) break;
      // travis-worker numbers from 0 (others from 1): anything skipped up to here is missing.
      const from = last === -Infinity ? (n === 1 ? 1 : 0) : last + 1;
      if (n > from) breaks.set(n, [from, n - 1]);
      ready.push(n);
      last = n;
    }
    return { ready, breaks, gap: ready.length < waiting.length };
  }

  function draw() {
    const drawn = drawable();
    if (view && view.closed && drawn.ready.length) rebuild = true;
    if (rebuild) {
      applied = liveFrom.part;
      for (const n of parts.keys()) undrawn.add(n);
      return drawParts(drawable());
    }
    return drawParts(drawn);
  }

  function drawParts({ ready, breaks, gap }) {
    if (rebuild) {
      const fragment = document.createDocumentFragment();
      view = newView(fragment, currentlyOpen());
      drawContent(view, state.content || "", state.gaps || [], state.missing_parts || []);
    }
    // Parts before the first missing range as one text, a marker, the next ones, ...
    let text = "";
    for (const n of ready) {
      if (breaks.has(n) && !(applied === -Infinity && state.content)) {
        appendText(view, text, false);
        text = "";
        markGap(view, breaks.get(n));
      }
      text += parts.get(n);
    }
    if (ready.length) applied = ready[ready.length - 1];
    for (const n of ready) undrawn.delete(n);
    appendText(view, text, complete() && !gap);
    if (rebuild) {
      liveEl.replaceChildren(view.root);
      view.root = view.stack[0] = liveEl;
      rebuild = false;
    }
    if (gap) askForGap();
  }

  // The page's text (a finished log), with a marker where each missing range would be.
  function drawContent(v, content, gaps, missing) {
    let from = 0;
    gaps.forEach((at, i) => {
      appendText(v, content.slice(from, at), false);
      markGap(v, missing[i]);
      from = at;
    });
    appendText(v, content.slice(from), false);
  }

  // Parts that never arrived: a note in the log where they belong (not a numbered line).
  function markGap(v, range) {
    if (v.tailNode) {
      v.tailNode.remove();
      v.tailNode = null;
    }
    const note = document.createElement("div");
    note.className = "gap";
    note.setAttribute("role", "note");
    note.dataset.missing = range.join("-");
    note.textContent =
      range[0] === range[1]
        ? `part ${range[0]} of this log is missing`
        : `parts ${range[0]}–${range[1]} of this log are missing`;
    const top = v.stack[v.stack.length - 1];
    (top.tagName === "DETAILS" ? top : chunkOf(top)).appendChild(note);
    drawTail(v);
  }

  // The header's lifecycle line: "archived 3 s after the last line", from the timeline.
  function showTimeline() {
    const t = state.timeline || {};
    const el = document.getElementById("timeline");
    const last = Date.parse(t.final_part || "");
    const words = [];
    const archived = Date.parse(t.archived || "");
    if (!Number.isNaN(archived) && !Number.isNaN(last)) {
      words.push(`archived ${since(archived - last)} after the last line`);
    }
    const missing = state.missing_parts || [];
    if (missing.length) {
      const list = missing.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
      words.push(`incomplete: part${missing.length > 1 || missing[0][0] !== missing[0][1] ? "s" : ""} ${list} missing`);
    }
    el.textContent = words.join(", ");
    el.title = Object.entries(t)
      .filter(([, at]) => at)
      .map(([step, at]) => `${step}: ${at}`)
      .join("\n");
    el.hidden = !words.length;
  }

  function since(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
  }

  // A later number showed that a part did not come over Pusher (over 10 KB, or lost in a
  // reconnect): fetch it at once, and again every 500 ms while the gap stays open.
  let gapTimer = null;
  function askForGap() {
    if (gapTimer) return;
    fillGaps();
    gapTimer = setTimeout(() => {
      gapTimer = null;
      scheduleRender();
    }, 500);
  }

  function render() {
    const started = performance.now();
    renderQueued = false;
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
    draw();
    if (!showAnchor() && atBottom && !state.complete) window.scrollTo(0, document.body.scrollHeight);
    logEl.dataset.lines = String(view.number + (view.tailNode ? 1 : 0));
    renderMs += performance.now() - started;
  }
  let renderMs = 0;

  // Open the folds around #L<n> and bring it into view, once it exists.
  function showAnchor() {
    const match = /^#L(\d+)$/.exec(location.hash);
    anchorShown = anchorShown || !match;
    if (!match || anchorShown) return false;
    const target = document.getElementById("L" + match[1]);
    if (!target) return false;
    for (let el = target.parentElement; el && el !== logEl; el = el.parentElement) {
      if (el.tagName === "DETAILS") el.open = true;
    }
    target.scrollIntoView({ block: "center" });
    anchorShown = true;
    return true;
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(render);
  }

  function addPart(number, content, final) {
    // Parts up to `liveFrom.part` are in the rows read by range: a part is drawn once.
    if (typeof number !== "number" || parts.has(number) || number <= liveFrom.part) return;
    parts.set(number, content || "");
    undrawn.add(number);
    if (number < applied) rebuild = true; // arrived after later ones were drawn
    if (final) {
      finalSeen = true;
      setStatus("finished", "finished");
    }
    scheduleRender();
  }

  // --- live updates -------------------------------------------------------------------

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = "status " + (cls || "");
  }

  const loadedAt = Date.now();

  async function getParts(query) {
    const response = await fetch(`/log-parts/${state.job_id}?${query}`, {
      headers: { "X-Log-Grant": state.grant },
    });
    if (response.status === 404) return []; // no log yet
    // The grant expired or its secret was rotated: a reload asks for a new one (or shows why
    // not). Not within the first minute, so a refusing server cannot cause a reload loop.
    if (response.status === 403 && Date.now() - loadedAt > 60000) location.reload();
    if (!response.ok) throw new Error(`GET /log-parts: ${response.status}`);
    return (await response.json()).log_parts;
  }

  let filling = null;
  let fillAgain = false;

  // Ask which part numbers exist (content=false), then fetch the missing ones only.
  async function fillGaps() {
    if (filling) {
      fillAgain = true;
      return filling;
    }
    filling = (async () => {
      do {
        fillAgain = false;
        const after = liveFrom.part === -Infinity ? "" : `&after=${liveFrom.part}`;
        const known = await getParts("content=false" + after);
        if (known.length && known[0].id === undefined) {
          location.reload(); // "log aggregated": the page now starts from the whole log
          return;
        }
        const missing = known.map((p) => p.number).filter((n) => !parts.has(n));
        for (let i = 0; i < missing.length; i += 200) {
          const chunk = missing.slice(i, i + 200).join(",");
          for (const p of await getParts("part_numbers=" + chunk)) addPart(p.number, p.content, p.final);
        }
        if (known.length) filledUpTo = Math.max(filledUpTo, ...known.map((p) => p.number));
        scheduleRender();
      } while (fillAgain);
    })()
      .catch((err) => setStatus("reconnecting (" + err.message + ")"))
      .finally(() => {
        filling = null;
      });
    return filling;
  }

  function follow() {
    const p = state.pusher;
    if (typeof Pusher === "undefined" || !p.key) {
      setStatus("live (polling)", "live");
      setInterval(fillGaps, 3000);
      return fillGaps();
    }
    const options = {
      cluster: p.cluster,
      forceTLS: p.forceTLS,
      disableStats: true,
      channelAuthorization: {
        endpoint: p.authEndpoint,
        transport: "ajax",
        headers: { "X-Log-Grant": state.grant },
      },
    };
    if (p.wsHost) {
      Object.assign(options, { wsHost: p.wsHost, wsPort: p.wsPort, wssPort: p.wsPort, enabledTransports: ["ws", "wss"] });
    }
    const pusher = new Pusher(p.key, options);
    const channel = pusher.subscribe(p.channel);
    channel.bind("job:log", (data) => addPart(data.number, data._log, data.final));
    // Fires on the first subscription and again after every reconnect.
    channel.bind("pusher:subscription_succeeded", () => {
      setStatus(finalSeen ? "finished" : "live", "live");
      fillGaps();
    });
    pusher.connection.bind("state_change", (s) => {
      if (s.current !== "connected") setStatus(s.current);
    });
    window.travisLogsPusher = pusher; // lets a test cut the connection
  }

  // --- start --------------------------------------------------------------------------

  if (state.removed_at) {
    const removed = document.getElementById("removed");
    removed.textContent = `Log removed by user ${state.removed_by} at ${state.removed_at}`;
    removed.hidden = false;
  }
  showTimeline();
  if (state.ranged) startRanged();
  else startWhole();

  // A log too large to carry opens by range (viewer-ranged.js), at its end. A log archived
  // before indexes were written has none: its whole text, drawn as before.
  function startRanged() {
    if (state.complete) setStatus("finished", "finished");
    else setStatus("connecting");
    window.travisLogsRanged.start(state, logEl, setStatus).then(followRanged, async (err) => {
      if (err.status !== 404) return setStatus("error (" + err.message + ")");
      const response = await fetch(`/logs/${state.job_id}/text`, {
        headers: { "X-Log-Grant": state.grant },
      });
      if (!response.ok) return setStatus(`error (GET /logs/${state.job_id}/text: ${response.status})`);
      Object.assign(state, { content: await response.text(), ranged: false });
      startWhole();
    });
  }

  // A streaming log read by range: its later parts are drawn below the rows, as a whole log's
  // are. Parts stored between the index read and the subscription come with the fill that
  // follows every subscription (`after` the last indexed part); any part also delivered over
  // Pusher is kept once (`addPart`).
  function followRanged(v) {
    if (!v.live) return;
    liveFrom.part = v.live.lastPart;
    liveFrom.lines = v.index.lines;
    filledUpTo = liveFrom.part;
    state.content = v.live.tail;
    liveEl = document.createElement("div");
    liveEl.className = "live";
    logEl.appendChild(liveEl);
    render();
    follow();
    Object.defineProperties(window.travisLogsViewer, {
      parts: { value: parts },
      fillGaps: { value: fillGaps },
      finalSeen: { get: () => finalSeen },
    });
  }

  function startWhole() {
    for (const p of state.parts) addPart(p.number, p.content, p.final);
    // The page holds every part stored when it was made: gaps below its last one are real.
    if (state.parts.length) filledUpTo = Math.max(...state.parts.map((p) => p.number));
    render();
    if (state.complete) setStatus("finished", "finished");
    else follow();
    window.addEventListener("hashchange", () => {
      anchorShown = false;
      showAnchor();
    });
    window.travisLogsViewer = {
      parts,
      fillGaps,
      get finalSeen() { return finalSeen; },
      get renderMs() { return renderMs; },
    };
  }
})();
