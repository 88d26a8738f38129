// ANSI colours and travis markers for the viewer's lines: one line of log text to styled
// spans, carrying the SGR state from line to line. Shared by viewer.js and viewer-ranged.js.
(function () {
  "use strict";

  const COLOURS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
  const MARKER = /travis_(fold|time):(start|end):([^\s\x1b]*)\r?/g;
  const ESCAPE = /\x1b\[([0-9;?]*)([A-Za-z])/g;

  function newStyle() {
    return { fg: null, bg: null, bold: false, italic: false, underline: false };
  }

  function applySgr(style, params) {
    const codes = params === "" ? [0] : params.split(";").map(Number);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) Object.assign(style, newStyle());
      else if (c === 1) style.bold = true;
      else if (c === 3) style.italic = true;
      else if (c === 4) style.underline = true;
      else if (c === 22) style.bold = false;
      else if (c === 23) style.italic = false;
      else if (c === 24) style.underline = false;
      else if (c >= 30 && c <= 37) style.fg = COLOURS[c - 30];
      else if (c >= 90 && c <= 97) style.fg = "bright-" + COLOURS[c - 90];
      else if (c >= 40 && c <= 47) style.bg = COLOURS[c - 40];
      else if (c === 39) style.fg = null;
      else if (c === 49) style.bg = null;
      else if (c === 38 || c === 48) i += codes[i + 1] === 5 ? 2 : 4; // 256/RGB: skipped
    }
  }

  function classes(style) {
    const names = [];
    if (style.fg) names.push("fg-" + style.fg);
    if (style.bg) names.push("bg-" + style.bg);
    if (style.bold) names.push("b");
    if (style.italic) names.push("i");
    if (style.underline) names.push("u");
    return names.join(" ");
  }

  // Styled spans of one segment; escape sequences other than colours (erase line,
  // cursor moves) are dropped.
  function spans(text, style, out) {
    let last = 0;
    for (const m of text.matchAll(ESCAPE)) {
      if (m.index > last) out.push({ text: text.slice(last, m.index), cls: classes(style) });
      if (m[2] === "m") applySgr(style, m[1]);
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push({ text: text.slice(last), cls: classes(style) });
    return out;
  }

  function visible(text) {
    return text.replace(ESCAPE, "") !== "";
  }

  // A carriage return overwrites the line: show what follows the last one that is
  // followed by visible text (progress bars), keeping the colours set before it.
  function styledLine(line, style) {
    const segments = line.split("\r");
    let keep = segments.length - 1;
    while (keep > 0 && !visible(segments[keep])) keep--;
    for (let i = 0; i < keep; i++) spans(segments[i], style, []);
    return spans(segments.slice(keep).join(""), style, []);
  }

  window.travisLogsAnsi = { MARKER, ESCAPE, newStyle, styledLine, visible };
})();
