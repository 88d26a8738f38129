// The viewer for a log too large to carry in the page: it reads the log's index
// (GET /logs/:id/index: line starts every `line_step` lines, folds, timers, parts with their
// arrival times) and then only the blocks of lines on screen, by byte range from
// GET /logs/:id/text, the log's end first. The DOM holds the rows on screen plus a margin:
// every row is one line high (long lines scroll sideways), so row r sits at r * rowHeight
// and a spacer as tall as all rows gives the page its scroll bar. A log still streaming is
// read this way up to its parts so far; viewer.js draws the later ones below (`start`'s `live`).
(function () {
  "use strict";

  const { MARKER, newStyle, styledLine } = window.travisLogsAnsi;
  const MARGIN_ROWS = 50; // rendered above and below the screen
  const KEPT_BLOCKS = 16; // blocks of text kept in memory (least recently used go first)

  // --- the index ----------------------------------------------------------------------

  // Fold sections as the page uses them: [line, end) with the end line left visible (it
  // carries what follows the end marker), the timers' durations inside, closed at first
  // (but for a section still running at a streaming log's end: its lines are the news).
  function foldsOf(index, live) {
    return index.folds.map((f) => {
      const end = f.end_line == null ? index.lines + 1 : f.end_line;
      const ns = index.timers
        .filter((t) => t.line >= f.line && t.line < end && t.duration != null)
        .reduce((sum, t) => sum + t.duration, 0);
      return { name: f.name, line: f.line, end, ns, open: live && f.end_line == null };
    });
  }

  // Durations of the timers that start on a line (a command's line shows how long it ran).
  function timersByLine(index) {
    const byLine = new Map();
    for (const t of index.timers) {
      if (t.duration != null) byLine.set(t.line, (byLine.get(t.line) || 0) + t.duration);
    }
    return byLine;
  }

  function seconds(ns) {
    return (ns / 1e9).toFixed(2) + " s";
  }

  // When the byte at `offset` arrived: its part's arrival (Unix ms), or null when unknown.
  function arrivalAt(parts, offset) {
    if (!parts || parts.arrived_from == null || !parts.offset.length) return null;
    let lo = 0;
    let hi = parts.offset.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (parts.offset[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    const ms = parts.arrived_ms[lo];
    return ms == null ? null : parts.arrived_from + ms;
  }

  // --- rows: the lines not hidden in closed folds -------------------------------------

  // Hidden line ranges (inclusive, sorted, disjoint) with the hidden lines before each.
  function hiddenRanges(folds) {
    const ranges = folds
      .filter((f) => !f.open && f.end - 1 >= f.line + 1)
      .map((f) => [f.line + 1, f.end - 1])
      .sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
      else merged.push(r);
    }
    let before = 0;
    return merged.map(([from, to]) => {
      const range = { from, to, before, row: from - 1 - before };
      before += to - from + 1;
      return range;
    });
  }

  // How many of `ranges` satisfy `test` (a prefix of them, as they are sorted).
  function countWhile(ranges, test) {
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (test(ranges[mid])) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function hiddenIn(ranges, k) {
    return k === 0 ? 0 : ranges[k - 1].before + ranges[k - 1].to - ranges[k - 1].from + 1;
  }

  function rowToLine(ranges, row) {
    return row + 1 + hiddenIn(ranges, countWhile(ranges, (r) => r.row <= row));
  }

  function lineToRow(ranges, line) {
    return line - 1 - hiddenIn(ranges, countWhile(ranges, (r) => r.to < line));
  }

  // --- blocks of text -----------------------------------------------------------------

  function blockBytes(index, k) {
    const starts = index.line_starts;
    const end = k + 1 < starts.length ? starts[k + 1] - 1 : index.size - 1;
    return [starts[k], end];
  }

  // A block's lines as styled spans (colours carry from line to line within the block),
  // with each line's byte offset in the log.
  function parseBlock(bytes, start) {
    const decoder = new TextDecoder();
    const lines = [];
    const offsets = [];
    const style = newStyle();
    let at = 0;
    while (at < bytes.length) {
      let nl = bytes.indexOf(10, at);
      if (nl < 0) nl = bytes.length;
      const raw = decoder.decode(bytes.subarray(at, nl));
      lines.push(styledLine(raw.replace(MARKER, ""), style));
      offsets.push(start + at);
      at = nl + 1;
    }
    return { lines, offsets };
  }

  async function fetchBytes(state, index, k) {
    const [start, end] = blockBytes(index, k);
    const response = await fetch(`/logs/${state.job_id}/text`, {
      headers: { "X-Log-Grant": state.grant, Range: `bytes=${start}-${end}` },
    });
    if (response.status !== 206) throw new Error(`GET /logs/${state.job_id}/text: ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  async function fetchBlock(state, index, k) {
    return parseBlock(await fetchBytes(state, index, k), blockBytes(index, k)[0]);
  }

  // Where a streaming log's live parts take over: after its last indexed part, and from its
  // last line when that line is not complete yet (the next part continues it, so viewer.js
  // draws it and the rows here stop before it). The last block is read here, first.
  async function liveStart(state, index) {
    const numbers = index.parts.number || [];
    const live = { lastPart: numbers.length ? Math.max(...numbers) : -Infinity, tail: "", block: null };
    const k = index.line_starts.length - 1;
    if (k < 0 || !index.size) return live;
    const bytes = await fetchBytes(state, index, k);
    live.block = [k, parseBlock(bytes, blockBytes(index, k)[0])];
    if (bytes[bytes.length - 1] !== 10) {
      live.tail = new TextDecoder().decode(bytes.subarray(bytes.lastIndexOf(10) + 1));
      index.lines -= 1;
    }
    return live;
  }

  // --- drawing ------------------------------------------------------------------------

  function element(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text != null) el.textContent = text;
    return el;
  }

  function lineNumber(line, arrived) {
    const a = element("a", "num", String(line));
    a.href = "#L" + line;
    if (arrived != null) a.title = "arrived " + new Date(arrived).toISOString();
    return a;
  }

  // Time since the log's first part, for the arrival times column.
  function arrivalLabel(arrived, from) {
    return element("span", "at", arrived == null ? "" : "+" + seconds((arrived - from) * 1e6));
  }

  function foldLabel(fold) {
    const label = element("span", "fold-name", fold.name + (fold.ns ? " " + seconds(fold.ns) : ""));
    label.dataset.fold = fold.name;
    return label;
  }

  function rowElement(v, line) {
    const div = element("div", "line");
    div.id = "L" + line;
    if (line === v.target) div.classList.add("target");
    const block = v.blocks.get(Math.floor((line - 1) / v.index.line_step));
    const slot = (line - 1) % v.index.line_step;
    const offset = block && block.offsets ? block.offsets[slot] : null;
    const arrived = offset == null ? null : arrivalAt(v.index.parts, offset);
    div.appendChild(lineNumber(line, arrived));
    if (v.startTime != null) div.appendChild(arrivalLabel(arrived, v.startTime));
    const fold = v.foldAt.get(line);
    if (fold) {
      div.classList.add("fold-start", fold.open ? "open" : "closed");
      div.appendChild(foldLabel(fold));
    }
    if (!block || !block.lines) div.classList.add("pending");
    else for (const s of block.lines[slot]) div.appendChild(element("span", s.cls, s.text));
    // A command's running time, at the end of its line (a fold's title shows its total).
    if (!fold && v.timers.has(line)) div.appendChild(element("span", "duration", seconds(v.timers.get(line))));
    return div;
  }

  function visibleRows(v) {
    const top = window.scrollY - v.spacer.offsetTop;
    const first = Math.max(0, Math.floor(top / v.rowHeight) - MARGIN_ROWS);
    const last = Math.min(v.rows - 1, Math.ceil((top + window.innerHeight) / v.rowHeight) + MARGIN_ROWS);
    return [first, last];
  }

  function draw(v) {
    v.queued = false;
    const [first, last] = visibleRows(v);
    const rows = [];
    const wanted = new Set();
    for (let row = first; row <= last; row++) {
      const line = rowToLine(v.hidden, row);
      wanted.add(Math.floor((line - 1) / v.index.line_step));
      rows.push(rowElement(v, line));
    }
    v.frame.style.top = first * v.rowHeight + "px";
    v.frame.replaceChildren(...rows);
    // A wider row may have brought the sideways scroll bar: the end stays in view.
    if (v.atEnd) window.scrollTo(window.scrollX, document.documentElement.scrollHeight);
    for (const k of wanted) load(v, k);
    forget(v, wanted);
  }

  function schedule(v) {
    if (v.queued) return;
    v.queued = true;
    requestAnimationFrame(() => draw(v));
  }

  function load(v, k) {
    const had = v.blocks.get(k);
    if (had) {
      v.blocks.delete(k); // most recently used last
      v.blocks.set(k, had);
      return;
    }
    v.blocks.set(k, {});
    fetchBlock(v.state, v.index, k)
      .then((block) => {
        v.blocks.set(k, block);
        v.loaded += 1;
        schedule(v);
      })
      .catch((err) => {
        v.blocks.delete(k);
        v.status("error (" + err.message + ")");
      });
  }

  function forget(v, wanted) {
    for (const k of v.blocks.keys()) {
      if (v.blocks.size <= KEPT_BLOCKS) return;
      if (!wanted.has(k)) v.blocks.delete(k);
    }
  }

  // --- folds, anchors, scrolling ------------------------------------------------------

  function layout(v) {
    v.hidden = hiddenRanges(v.folds);
    v.rows = lineToRow(v.hidden, v.index.lines) + 1;
    v.spacer.style.height = v.rows * v.rowHeight + "px";
  }

  // Open or close a fold, keeping its title row where it is on screen.
  function toggle(v, fold) {
    const before = lineToRow(v.hidden, fold.line) * v.rowHeight - window.scrollY;
    fold.open = !fold.open;
    layout(v);
    window.scrollTo(window.scrollX, lineToRow(v.hidden, fold.line) * v.rowHeight - before);
    draw(v);
  }

  // Bring line `line` to the middle of the screen, opening the folds that hide it; only the
  // blocks around it are read.
  function jump(v, line) {
    const target = Math.min(Math.max(1, line), v.index.lines);
    for (const f of v.folds) if (f.line < target && target < f.end) f.open = true;
    layout(v);
    v.target = target;
    const y = v.spacer.offsetTop + lineToRow(v.hidden, target) * v.rowHeight;
    window.scrollTo(window.scrollX, y - window.innerHeight / 2);
    draw(v);
  }

  function anchor() {
    const match = /^#L(\d+)$/.exec(location.hash);
    return match ? Number(match[1]) : null;
  }

  function measureRow(frame) {
    const probe = element("div", "line", "0");
    frame.appendChild(probe);
    const height = probe.getBoundingClientRect().height;
    probe.remove();
    return height || 20;
  }

  function listen(v) {
    window.addEventListener(
      "scroll",
      () => {
        v.atEnd = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
        schedule(v);
      },
      { passive: true },
    );
    window.addEventListener("resize", () => schedule(v));
    window.addEventListener("hashchange", () => {
      const line = anchor();
      if (line) jump(v, line);
    });
    v.frame.addEventListener("click", (event) => {
      const label = event.target.closest(".fold-start");
      if (!label || event.target.closest("a.num")) return;
      const fold = v.foldAt.get(Number(label.id.slice(1)));
      if (fold) toggle(v, fold);
    });
  }

  function showTimes(v, logEl) {
    if (v.index.parts.arrived_from == null) return;
    const box = document.getElementById("times");
    document.getElementById("times-toggle").hidden = false;
    box.addEventListener("change", () => {
      v.startTime = box.checked ? v.index.parts.arrived_from : null;
      logEl.classList.toggle("with-times", box.checked);
      draw(v);
    });
  }

  function view(state, logEl, index, live) {
    const spacer = element("div", "spacer");
    const frame = element("div", "frame");
    spacer.appendChild(frame);
    logEl.replaceChildren(spacer);
    logEl.classList.add("ranged");
    logEl.dataset.lines = String(index.lines);
    const folds = foldsOf(index, live);
    const v = { state, index, spacer, frame, folds, foldAt: new Map(folds.map((f) => [f.line, f])) };
    return Object.assign(v, {
      timers: timersByLine(index),
      blocks: new Map(),
      rowHeight: measureRow(frame),
      target: null,
      atEnd: false, // the page shows the log's end, and keeps it in view as rows widen
      startTime: null,
      loaded: 0,
      queued: false,
    });
  }

  // Resolves once the log's end is asked for, with `live` for a streaming log (its last
  // indexed part, and the text of its unfinished last line); rejects (with the answer's
  // `status`) when the index cannot be read.
  async function start(state, logEl, setStatus) {
    const response = await fetch(`/logs/${state.job_id}/index`, {
      headers: { "X-Log-Grant": state.grant },
    });
    if (!response.ok) {
      throw Object.assign(new Error(`GET /logs/${state.job_id}/index: ${response.status}`), {
        status: response.status,
      });
    }
    const index = await response.json();
    const live = state.complete ? null : await liveStart(state, index);
    const v = view(state, logEl, index, !!live);
    v.live = live;
    if (live && live.block) {
      v.blocks.set(...live.block);
      v.loaded += 1;
    }
    v.status = setStatus;
    layout(v);
    listen(v);
    showTimes(v, logEl);
    const line = anchor();
    if (line) jump(v, line);
    else {
      v.atEnd = true; // the log's end first, and only its blocks read
      window.scrollTo(0, document.documentElement.scrollHeight);
      draw(v);
    }
    window.travisLogsViewer = {
      ranged: true,
      jump: (n) => jump(v, n),
      get blocksLoaded() { return v.loaded; },
      get blocksKept() { return v.blocks.size; },
    };
    return v;
  }

  window.travisLogsRanged = {
    start,
    // Pure helpers, for tests in the page.
    hiddenRanges,
    rowToLine,
    lineToRow,
    arrivalAt,
  };
})();
