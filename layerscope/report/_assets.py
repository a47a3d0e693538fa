"""The report's inline stylesheet and script.

Both are written by hand for this report (no library fits the need of a single offline file with
no downloads): a responsive layout with a table of contents, and a small canvas scatter plot with
zoom, pan, touch pinch and a hover/tap tooltip. The plots of one result are linked (same
observations, layers × checkpoints): one toolbar chooses the colouring (true class by default,
predicted class, any other label), finds a sample id, and a selected sample (click or search) or
an isolated class (legend click; shift-click hides a class) shows in every plot of the group.
A charting library was measured and not taken: Bokeh 3.9's ``bokeh.min.js`` alone is 1.27 MB
(1.65 MB with the widgets a selector needs) per report, against about 25 kB for this script. The script reads data only from
``<script type="application/json">`` blocks and writes data only through ``textContent``, so no
label from the data can become markup.
"""

from __future__ import annotations

CSS = r"""
:root { --fg:#1d232b; --muted:#5b6673; --bg:#ffffff; --panel:#f5f7fa; --line:#dde3ea; --accent:#2459a8; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { padding: 18px 20px 10px; border-bottom: 1px solid var(--line); }
header.top h1 { margin: 0 0 4px; font-size: 1.45em; }
header.top p { margin: 0; color: var(--muted); font-size: .92em; word-break: break-word; }
.layout { display: block; }
nav.toc { padding: 8px 16px; border-bottom: 1px solid var(--line); background: var(--panel); }
nav.toc summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
nav.toc ol { margin: 6px 0; padding-left: 22px; }
nav.toc li { margin: 3px 0; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
main { padding: 8px 16px 40px; min-width: 0; }
section.analysis { border-bottom: 1px solid var(--line); padding: 10px 0 22px; }
section.analysis > h2 { font-size: 1.25em; margin: 14px 0 2px; }
.where { color: var(--muted); font-size: .85em; margin: 0 0 8px; word-break: break-all; }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
figure { margin: 12px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figure img.pixel { image-rendering: pixelated; }
img.cellimg { width: 56px; height: 56px; object-fit: contain; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
figcaption { color: var(--muted); font-size: .88em; margin-top: 4px; }
figcaption b { color: var(--fg); }
.tablewrap { overflow-x: auto; max-width: 100%; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: .88em; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: var(--muted); font-size: .88em; }
details.more { margin: 8px 0; }
details.more > summary { cursor: pointer; color: var(--accent); }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.gallery figure { margin: 0; }
.plots { display: grid; grid-template-columns: 1fr; gap: 18px; }
.plot { position: relative; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; min-width: 0; }
.plot h4 { margin: 0 0 4px; font-size: .98em; }
.plot .bar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 4px 0; font-size: .85em; }
.plot button, .plot select { font: inherit; padding: 2px 8px; border: 1px solid var(--line); background: var(--panel); border-radius: 4px; cursor: pointer; }
.plot canvas { display: block; width: 100%; touch-action: none; cursor: crosshair; border: 1px solid var(--line); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 6px; font-size: .82em; margin-top: 6px; align-items: center; }
.legend button.item { font: inherit; border: 1px solid transparent; background: none; padding: 1px 5px; border-radius: 4px; cursor: pointer; color: var(--fg); }
.legend button.item:hover { border-color: var(--line); background: var(--panel); }
.legend button.item.off { text-decoration: line-through; opacity: .45; }
.legend button.item.dim { opacity: .45; }
.legend button.item.iso { font-weight: 700; border-color: #8a96a3; }
.legend span.sw { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; vertical-align: middle; }
.linkbar { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: center; margin: 8px 0; padding: 6px 8px; background: var(--panel);
  border: 1px solid var(--line); border-radius: 6px; font-size: .88em; position: sticky; top: 0; z-index: 5; }
.linkbar:empty { display: none; }
.linkbar select, .linkbar input, .linkbar button { font: inherit; padding: 2px 6px; border: 1px solid #b9c2cc; border-radius: 4px; background: #fff; }
.linkbar form.find { display: inline-flex; gap: 4px; margin: 0; }
.linkbar .status { color: #8a0000; font-weight: 600; }
.pm { font-size: .85em; color: var(--muted); }
.pm .metric, td.metric, th.metric { text-decoration: underline dotted #8a96a3; cursor: help; }
dl.defs { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 1px 12px; font-size: .82em; color: var(--muted); margin: 4px 0 14px; }
dl.defs dt { font-weight: 600; color: var(--fg); } dl.defs dd { margin: 0; }
td.def { color: var(--muted); font-size: .92em; max-width: 520px; }
details.raw { margin: 8px 0; } details.raw > summary { cursor: pointer; color: var(--accent); }
details.raw pre { max-height: 420px; overflow: auto; background: var(--panel); border: 1px solid var(--line); padding: 8px; font-size: .78em; white-space: pre; }
.ls-tooltip { position: absolute; z-index: 10; pointer-events: none; background: rgba(255,255,255,.97); border: 1px solid #8a96a3;
  border-radius: 4px; padding: 6px 8px; font-size: .82em; box-shadow: 0 2px 8px rgba(0,0,0,.18); max-width: 240px; display: none; }
.ls-tooltip canvas { display: block; border: 1px solid var(--line); margin-bottom: 4px; width: 84px; height: 84px; image-rendering: pixelated; }
.ls-tooltip div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
svg.chart { max-width: 100%; min-width: 500px; height: auto; background: #fff; border: 1px solid var(--line); }  /* phones: scroll, labels stay readable */
svg.chart text { font: 11px system-ui, sans-serif; fill: #333; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: .88em; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; word-break: break-word; }
code { background: var(--panel); padding: 0 3px; border-radius: 3px; }
@media (min-width: 900px) {
  .layout { display: grid; grid-template-columns: 250px minmax(0, 1fr); }
  nav.toc { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow-y: auto; border-bottom: 0; border-right: 1px solid var(--line); min-height: 100vh; }
  main { padding: 8px 28px 40px; }
  .plots { grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); }
}
.figscroll { overflow-x: auto; max-width: 100%; }
figure img.wide { max-width: none; height: auto; }  /* natural size (width set inline): scroll sideways */
@media (max-width: 600px) { dl.defs { grid-template-columns: 1fr; } dl.defs dd { margin-bottom: 4px; } .linkbar .note { display: none; } }
@media (max-width: 480px) {
  body { font-size: 14px; }
  main { padding: 6px 10px 30px; }
  header.top { padding: 12px 10px 8px; }
}
"""

JS = r"""
(function () {
  "use strict";
  var TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var FADED = "#d4d8dd";
  var LINKS = {};
  function catColor(i) {
    if (i === null || i === undefined || i < 0) { return "#999999"; }
    if (i < 10) { return TAB10[i]; }
    return "hsl(" + ((i * 137.508) % 360).toFixed(1) + ",65%," + (40 + (i % 3) * 10) + "%)";
  }
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function seqColor(t) {
    if (!(t >= 0)) { t = 0; } if (t > 1) { t = 1; }
    var s = t * (VIRIDIS.length - 1), k = Math.min(Math.floor(s), VIRIDIS.length - 2), f = s - k;
    var a = VIRIDIS[k], b = VIRIDIS[k + 1];
    return "rgb(" + Math.round(a[0] + f * (b[0] - a[0])) + "," + Math.round(a[1] + f * (b[1] - a[1])) + "," + Math.round(a[2] + f * (b[2] - a[2])) + ")";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function fmt(v) {
    if (typeof v === "number" && !Number.isInteger(v)) { return v.toPrecision(4); }
    return String(v);
  }

  // ---- a link group: the plots of one result (same observations: layers x checkpoints) ----------
  // It holds what the reader chose: the colouring, an isolated class, hidden classes and a selected
  // sample id; every plot of the group draws from it, so a choice shows in all of them at once.
  function Link(id) {
    this.id = id; this.plots = []; this.mode = null; this.iso = null; this.hidden = {}; this.sel = null;
    this.status = null; this.search = null; this.select_ = null;
  }
  Link.prototype.modeNames = function () {
    var names = [];
    for (var p = 0; p < this.plots.length; p++) {
      var ms = this.plots[p].modes;
      for (var m = 0; m < ms.length; m++) { if (names.indexOf(ms[m].name) < 0) { names.push(ms[m].name); } }
    }
    return names;
  };
  Link.prototype.redraw = function () {
    for (var p = 0; p < this.plots.length; p++) { this.plots[p].legend(); this.plots[p].draw(); }
    this.report();
  };
  Link.prototype.setMode = function (name) {
    this.mode = name; this.iso = null; this.hidden = {};
    if (this.select_) { this.select_.value = name; }
    this.redraw();
  };
  Link.prototype.isolate = function (code) {
    this.iso = (this.iso === code) ? null : code;
    if (this.iso !== null) { delete this.hidden[code]; }
    this.redraw();
  };
  Link.prototype.toggle = function (code) {
    if (this.hidden[code]) { delete this.hidden[code]; } else { this.hidden[code] = true; }
    if (this.iso === code) { this.iso = null; }
    this.redraw();
  };
  Link.prototype.showAll = function () { this.iso = null; this.hidden = {}; this.redraw(); };
  Link.prototype.select = function (id) {
    this.sel = (id === null || id === undefined || id === "") ? null : String(id);
    if (this.search && this.search.value !== (this.sel || "")) { this.search.value = this.sel || ""; }
    this.redraw();
  };
  Link.prototype.report = function () {
    if (!this.status) { return; }
    var parts = [];
    if (this.sel !== null) {
      var found = 0, name = "sample";
      for (var p = 0; p < this.plots.length; p++) {
        if (this.plots[p].indexOf(this.sel) >= 0) { found++; }
        name = this.plots[p].spec.idName || name;
      }
      parts.push(found ? name + " " + this.sel + " is ringed in " + found + " of " + this.plots.length + " plots"
        : name + " " + this.sel + " is not in these plots");
    }
    if (this.iso !== null) { parts.push("one class isolated (click it again to show all)"); }
    var nh = Object.keys(this.hidden).length;
    if (nh) { parts.push(nh + " class(es) hidden"); }
    this.status.textContent = parts.join(" \u00b7 ");
  };
  Link.prototype.buildBar = function (bar) {
    var self = this;
    var names = this.modeNames();
    if (names.length > 1) {
      var lab = el("label", null, "colour by ");
      var sel = el("select");
      sel.setAttribute("aria-label", "colour points by");
      for (var g = 0; g < names.length; g++) { var o = el("option", null, names[g]); o.value = names[g]; sel.appendChild(o); }
      sel.value = this.mode;
      sel.addEventListener("change", function () { self.setMode(sel.value); });
      lab.appendChild(sel); bar.appendChild(lab);
      this.select_ = sel;
    }
    var hasIds = false;
    for (var p = 0; p < this.plots.length; p++) { if (this.plots[p].spec.id) { hasIds = true; } }
    if (hasIds) {
      var idName = this.plots[0].spec.idName || "sample";
      var form = el("form", "find");
      var input = el("input");
      input.type = "search"; input.placeholder = idName + " id"; input.setAttribute("aria-label", "find a " + idName + " by id");
      input.setAttribute("inputmode", "numeric"); input.size = 9;
      var go = el("button", null, "find"); go.type = "submit";
      form.appendChild(input); form.appendChild(go);
      form.addEventListener("submit", function (ev) { ev.preventDefault(); self.select(input.value.trim()); });
      input.addEventListener("search", function () { if (input.value === "") { self.select(null); } });
      bar.appendChild(form);
      this.search = input;
    }
    var clear = el("button", null, "clear selection"); clear.type = "button";
    clear.addEventListener("click", function () { self.sel = null; if (self.search) { self.search.value = ""; } self.showAll(); });
    bar.appendChild(clear);
    this.status = el("span", "status");
    this.status.setAttribute("aria-live", "polite");
    bar.appendChild(this.status);
    if (this.plots.length > 1) {
      bar.appendChild(el("span", "note", "linked: " + this.plots.length + " plots of the same " + (this.plots[0].spec.idName || "sample") + "s"));
    }
  };

  // ---- one scatter plot ----------------------------------------------------------------------
  function Scatter(root, spec, link) {
    this.root = root; this.spec = spec; this.link = link;
    var n = spec.x.length;
    this.n = n;
    var xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (var i = 0; i < n; i++) {
      var x = spec.x[i], y = spec.y[i];
      if (x < xmin) { xmin = x; } if (x > xmax) { xmax = x; }
      if (y < ymin) { ymin = y; } if (y > ymax) { ymax = y; }
    }
    if (!(xmax > xmin)) { xmin -= 1; xmax += 1; }
    if (!(ymax > ymin)) { ymin -= 1; ymax += 1; }
    this.bounds = [xmin, xmax, ymin, ymax];
    this.groups = spec.groups || [];
    this.values = spec.values || [];
    // colourings: categories first (true class, then predicted class, then any other label), then
    // continuous values (e.g. a neuron's importance for a class)
    this.modes = [];
    for (var q = 0; q < this.groups.length; q++) {
      this.modes.push({ kind: "group", i: q, name: this.groups[q].name });
      if (q === 0 && spec.pred) {
        var g0 = this.groups[0].name;
        this.modes.push({ kind: "pred", i: 0, name: g0 === "true class" ? "predicted class" : "predicted " + g0 });
      }
    }
    for (var v = 0; v < this.values.length; v++) { this.modes.push({ kind: "value", i: v, name: this.values[v].name }); }
    this.hover = -1;
    this.ids = null;
    this.sprite = spec.sprite ? document.getElementById(spec.sprite) : null;
    this.thumbs = spec.thumbnails ? [] : null;
  }
  Scatter.prototype.defaultMode = function () {
    for (var m = 0; m < this.modes.length; m++) { if (this.modes[m].name === this.spec["default"]) { return this.modes[m].name; } }
    return this.modes.length ? this.modes[0].name : null;
  };
  Scatter.prototype.currentMode = function () {
    var name = this.link.mode;
    for (var m = 0; m < this.modes.length; m++) { if (this.modes[m].name === name) { return this.modes[m]; } }
    var d = this.defaultMode();
    for (var k = 0; k < this.modes.length; k++) { if (this.modes[k].name === d) { return this.modes[k]; } }
    return null;
  };
  Scatter.prototype.modeName = function () { var m = this.currentMode(); return m ? m.name : null; };
  Scatter.prototype.indexOf = function (id) {
    if (!this.spec.id || id === null) { return -1; }
    if (!this.ids) {
      this.ids = {};
      for (var i = 0; i < this.n; i++) { this.ids[String(this.spec.id[i])] = i; }
    }
    var k = this.ids[String(id)];
    return k === undefined ? -1 : k;
  };
  Scatter.prototype.selectedIndex = function () { return this.indexOf(this.link.sel); };
  Scatter.prototype.build = function () {
    var self = this, spec = this.spec;
    var bar = el("div", "bar");
    var zin = el("button", null, "+"), zout = el("button", null, "\u2212"), rs = el("button", null, "reset");
    zin.type = zout.type = rs.type = "button";
    zin.title = "zoom in"; zout.title = "zoom out"; rs.title = "reset view (or double-click)";
    zin.addEventListener("click", function () { self.zoomAt(self.w / 2, self.h / 2, 1.5); });
    zout.addEventListener("click", function () { self.zoomAt(self.w / 2, self.h / 2, 1 / 1.5); });
    rs.addEventListener("click", function () { self.reset(); });
    bar.appendChild(zin); bar.appendChild(zout); bar.appendChild(rs);
    bar.appendChild(el("span", "note", this.n + " points \u00b7 wheel/pinch: zoom \u00b7 drag: pan \u00b7 click a point: ring it in every linked plot"));
    this.root.appendChild(bar);
    this.canvas = el("canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", spec.title || "scatter plot");
    this.root.appendChild(this.canvas);
    this.leg = el("div", "legend");
    this.root.appendChild(this.leg);
    this.tip = el("div", "ls-tooltip");
    this.root.appendChild(this.tip);
    this.resize();
    var c = this.canvas, pointers = {}, last = null, pinch = null, moved = 0;
    c.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = c.getBoundingClientRect();
      self.zoomAt(ev.clientX - r.left, ev.clientY - r.top, Math.exp(-ev.deltaY * 0.0015));
    }, { passive: false });
    c.addEventListener("dblclick", function () { self.reset(); });
    c.addEventListener("pointerdown", function (ev) {
      c.setPointerCapture(ev.pointerId);
      pointers[ev.pointerId] = [ev.clientX, ev.clientY];
      var ids = Object.keys(pointers);
      if (ids.length === 1) { last = [ev.clientX, ev.clientY]; moved = 0; }
      if (ids.length === 2) {
        var a = pointers[ids[0]], b = pointers[ids[1]];
        pinch = Math.hypot(a[0] - b[0], a[1] - b[1]);
      }
    });
    c.addEventListener("pointermove", function (ev) {
      var r = c.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
      if (pointers[ev.pointerId]) {
        pointers[ev.pointerId] = [ev.clientX, ev.clientY];
        var ids = Object.keys(pointers);
        if (ids.length === 2 && pinch) {
          var a = pointers[ids[0]], b = pointers[ids[1]], d = Math.hypot(a[0] - b[0], a[1] - b[1]);
          self.zoomAt((a[0] + b[0]) / 2 - r.left, (a[1] + b[1]) / 2 - r.top, d / pinch);
          pinch = d; moved += 10;
          return;
        }
        if (ids.length === 1 && last) {
          var dx = ev.clientX - last[0], dy = ev.clientY - last[1];
          moved += Math.abs(dx) + Math.abs(dy);
          if (moved > 3) { self.tx += dx; self.ty += dy; self.hideTip(); self.draw(); }
          last = [ev.clientX, ev.clientY];
          return;
        }
      }
      if (ev.pointerType === "mouse") { self.pick(px, py); }
    });
    function up(ev) {
      var r = c.getBoundingClientRect();
      if (pointers[ev.pointerId] && moved <= 3 && ev.type === "pointerup") {
        var i = self.pick(ev.clientX - r.left, ev.clientY - r.top);
        if (i >= 0 && self.spec.id) { self.link.select(self.spec.id[i]); }
      }
      delete pointers[ev.pointerId];
      if (Object.keys(pointers).length < 2) { pinch = null; }
      if (Object.keys(pointers).length === 0) { last = null; }
    }
    c.addEventListener("pointerup", up);
    c.addEventListener("pointercancel", up);
    c.addEventListener("pointerleave", function (ev) { if (ev.pointerType === "mouse") { self.hover = -1; self.hideTip(); self.draw(); } });
    window.addEventListener("resize", function () { self.resize(); self.draw(); });
  };
  Scatter.prototype.resize = function () {
    var w = Math.max(200, this.canvas.clientWidth || this.root.clientWidth - 18);
    var h = Math.round(Math.min(Math.max(w * 0.8, 240), 560));
    var dpr = window.devicePixelRatio || 1;
    var oldW = this.w, oldH = this.h;
    this.w = w; this.h = h; this.dpr = dpr;
    this.canvas.style.height = h + "px";
    this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(h * dpr);
    if (oldW && this.scale) {  // keep the centre of the view when the width changes
      var f = Math.min(w, h) / Math.min(oldW, oldH);
      this.tx = w / 2 + (this.tx - oldW / 2) * f; this.ty = h / 2 + (this.ty - oldH / 2) * f; this.scale *= f;
    }
  };
  Scatter.prototype.reset = function () {
    var b = this.bounds, pad = 14;
    var s = Math.min((this.w - 2 * pad) / (b[1] - b[0]), (this.h - 2 * pad) / (b[3] - b[2]));
    this.scale = s;
    this.tx = this.w / 2 - s * (b[0] + b[1]) / 2;
    this.ty = this.h / 2 + s * (b[2] + b[3]) / 2;
    this.hideTip(); this.draw();
  };
  Scatter.prototype.sx = function (i) { return this.tx + this.scale * this.spec.x[i]; };
  Scatter.prototype.sy = function (i) { return this.ty - this.scale * this.spec.y[i]; };
  Scatter.prototype.zoomAt = function (px, py, f) {
    var s = Math.max(1e-9, this.scale * f);
    f = s / this.scale;
    this.tx = px - (px - this.tx) * f; this.ty = py - (py - this.ty) * f; this.scale = s;
    this.hideTip(); this.draw();
  };
  // the category of point i in the current colouring (null for continuous colourings)
  Scatter.prototype.code = function (i) {
    var m = this.currentMode();
    if (!m || m.kind === "value") { return null; }
    var c = m.kind === "pred" ? this.spec.pred[i] : this.groups[m.i].codes[i];
    return (c === undefined) ? null : c;
  };
  Scatter.prototype.colorOf = function (i) {
    var m = this.currentMode();
    if (!m) { return "#1f77b4"; }
    if (m.kind === "value") {
      var val = this.values[m.i], lo = val.range[0], hi = val.range[1];
      return seqColor(hi > lo ? (val.v[i] - lo) / (hi - lo) : 0.5);
    }
    return catColor(this.code(i));
  };
  Scatter.prototype.mistaken = function (i) {
    var s = this.spec;
    return !!(s.pred && this.groups.length && s.pred[i] !== null && s.pred[i] !== undefined && s.pred[i] !== this.groups[0].codes[i]);
  };
  // crosses mark misclassified points while the colouring is the true or the predicted class
  Scatter.prototype.crossMode = function () {
    var m = this.currentMode();
    return !!(m && this.spec.pred && (m.kind === "pred" || (m.kind === "group" && m.i === 0)));
  };
  Scatter.prototype.visible = function (i) {
    var c = this.code(i);
    return !(c !== null && this.link.hidden[c]);
  };
  Scatter.prototype.faded = function (i) {
    var c = this.code(i);
    return this.link.iso !== null && c !== this.link.iso;
  };
  Scatter.prototype.draw = function () {
    var ctx = this.canvas.getContext("2d"), dpr = this.dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.w, this.h);
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, this.w, this.h);
    var r = this.n > 3000 ? 1.8 : (this.n > 800 ? 2.4 : 3.4);
    var cross = this.crossMode();
    var front = [];
    ctx.globalAlpha = 0.55;  // context: points of other classes while one is isolated
    for (var i = 0; i < this.n; i++) {
      if (!this.visible(i)) { continue; }
      if (!this.faded(i)) { front.push(i); continue; }
      var x = this.sx(i), y = this.sy(i);
      if (x < -5 || y < -5 || x > this.w + 5 || y > this.h + 5) { continue; }
      ctx.fillStyle = FADED;
      ctx.beginPath(); ctx.arc(x, y, r * 0.8, 0, 6.2832); ctx.fill();
    }
    ctx.globalAlpha = 0.85; ctx.lineWidth = 1.6;
    for (var k = 0; k < front.length; k++) {
      var j = front[k], a = this.sx(j), b = this.sy(j);
      if (a < -5 || b < -5 || a > this.w + 5 || b > this.h + 5) { continue; }
      var col = this.colorOf(j);
      if (cross && this.mistaken(j)) {  // misclassified: a cross in the colour of the current colouring
        var q = r + 1.2;
        ctx.strokeStyle = col;
        ctx.beginPath(); ctx.moveTo(a - q, b - q); ctx.lineTo(a + q, b + q); ctx.moveTo(a - q, b + q); ctx.lineTo(a + q, b - q); ctx.stroke();
      } else {
        ctx.fillStyle = col;
        ctx.beginPath(); ctx.arc(a, b, r, 0, 6.2832); ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
    var s = this.selectedIndex();
    if (s >= 0) {  // the selected sample: a thick ring, the same in every linked plot
      var sx = this.sx(s), sy = this.sy(s);
      ctx.lineWidth = 4; ctx.strokeStyle = "#ffffff";
      ctx.beginPath(); ctx.arc(sx, sy, r + 7, 0, 6.2832); ctx.stroke();
      ctx.lineWidth = 2.5; ctx.strokeStyle = "#d00000";
      ctx.beginPath(); ctx.arc(sx, sy, r + 7, 0, 6.2832); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(sx + r + 7, sy); ctx.lineTo(sx + r + 16, sy); ctx.stroke();
    }
    if (this.hover >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(this.sx(this.hover), this.sy(this.hover), r + 4, 0, 6.2832); ctx.stroke();
    }
    this.canvas.setAttribute("data-selected", String(s));
  };
  Scatter.prototype.nearest = function (px, py, maxd) {
    var best = -1, bd = maxd * maxd;
    for (var i = 0; i < this.n; i++) {
      if (!this.visible(i)) { continue; }
      var dx = this.sx(i) - px, dy = this.sy(i) - py, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  };
  Scatter.prototype.pick = function (px, py) {
    var i = this.nearest(px, py, 14);
    if (i !== this.hover) { this.hover = i; this.draw(); }
    if (i < 0) { this.hideTip(); } else { this.showTip(i); }
    return i;
  };
  Scatter.prototype.hideTip = function () { if (this.tip) { this.tip.style.display = "none"; } };
  Scatter.prototype.thumbCanvas = function (i) {
    var spec = this.spec, cv = null;
    if (this.sprite && spec.tile) {
      var k = spec.spriteIndex ? spec.spriteIndex[i] : i;
      if (k === null || k === undefined || k < 0) { return null; }
      var tw = spec.tile[0], th = spec.tile[1], cols = spec.cols;
      cv = el("canvas"); cv.width = tw; cv.height = th;
      var cx = cv.getContext("2d");
      cx.drawImage(this.sprite, (k % cols) * tw, Math.floor(k / cols) * th, tw, th, 0, 0, tw, th);
    } else if (spec.thumbnails && spec.thumbnails[i]) {
      var img = this.thumbs[i];
      if (!img) { img = new Image(); img.src = spec.thumbnails[i]; this.thumbs[i] = img; }
      cv = el("canvas"); cv.width = 28; cv.height = 28;
      var draw = function () { cv.width = img.naturalWidth || 28; cv.height = img.naturalHeight || 28; cv.getContext("2d").drawImage(img, 0, 0); };
      if (img.complete) { draw(); } else { img.addEventListener("load", draw); }
    }
    return cv;
  };
  Scatter.prototype.showTip = function (i) {
    var spec = this.spec, tip = this.tip;
    while (tip.firstChild) { tip.removeChild(tip.firstChild); }
    var cv = this.thumbCanvas(i);
    if (cv) { tip.appendChild(cv); }
    if (spec.text && spec.text[i] !== undefined && spec.text[i] !== null) { tip.appendChild(el("div", null, String(spec.text[i]))); }
    if (spec.id) { tip.appendChild(el("div", null, (spec.idName || "sample") + " " + spec.id[i])); }
    for (var g = 0; g < this.groups.length; g++) {
      var grp = this.groups[g], c = grp.codes[i];
      var name = (c !== null && c !== undefined && grp.names && grp.names[c] !== undefined) ? grp.names[c] : c;
      tip.appendChild(el("div", null, grp.name + ": " + name));
    }
    if (spec.pred) {
      var p = spec.pred[i], g0 = this.groups[0];
      var pn = (g0 && g0.names && g0.names[p] !== undefined) ? g0.names[p] : p;
      var line = el("div", null, "predicted: " + pn + (this.mistaken(i) ? "  \u2717" : "  \u2713"));
      if (this.mistaken(i)) { line.style.color = "#b00020"; }
      tip.appendChild(line);
    }
    for (var v = 0; v < this.values.length; v++) { tip.appendChild(el("div", null, this.values[v].name + ": " + fmt(this.values[v].v[i]))); }
    tip.style.display = "block";
    var rootR = this.root.getBoundingClientRect(), cR = this.canvas.getBoundingClientRect();
    var x = cR.left - rootR.left + this.sx(i) + 12, y = cR.top - rootR.top + this.sy(i) + 12;
    var tw = tip.offsetWidth, th = tip.offsetHeight;
    if (x + tw > rootR.width) { x = Math.max(0, x - tw - 24); }
    if (y + th > rootR.height) { y = Math.max(0, y - th - 24); }
    tip.style.left = x + "px"; tip.style.top = y + "px";
    tip.setAttribute("data-point", String(i));
  };
  Scatter.prototype.legend = function () {
    var leg = this.leg, spec = this.spec, link = this.link, self = this;
    while (leg.firstChild) { leg.removeChild(leg.firstChild); }
    var m = this.currentMode();
    if (m && m.kind === "value") {
      var val = this.values[m.i];
      leg.appendChild(el("span", null, "colour: " + val.name + " from " + fmt(val.range[0]) + " (purple) to " + fmt(val.range[1]) + " (yellow)"));
      return;
    }
    var g = m ? this.groups[m.i] : null;
    if (!g || !g.names) { return; }
    var shown = g.names.length > 40 ? 40 : g.names.length;
    for (var k = 0; k < shown; k++) {
      var item = el("button", "item"), sw = el("span", "sw");
      item.type = "button";
      item.setAttribute("data-code", String(k));
      item.title = "click: isolate this class in every linked plot \u00b7 shift-click: hide or show it";
      sw.style.background = catColor(k);
      item.appendChild(sw); item.appendChild(document.createTextNode(String(g.names[k])));
      if (link.hidden[k]) { item.className += " off"; }
      if (link.iso !== null) { item.className += (link.iso === k ? " iso" : " dim"); }
      item.setAttribute("aria-pressed", link.iso === k ? "true" : "false");
      (function (code) {
        item.addEventListener("click", function (ev) {
          if (ev.shiftKey || ev.ctrlKey || ev.metaKey) { link.toggle(code); } else { link.isolate(code); }
        });
      })(k);
      leg.appendChild(item);
    }
    if (shown < g.names.length) { leg.appendChild(el("span", null, "\u2026 and " + (g.names.length - shown) + " more")); }
    if (this.crossMode()) {
      leg.appendChild(el("span", "note", "\u2715 misclassified" + (m.kind === "pred" ? "" : " (colour = true class)")));
    }
  };
  // Where point i is on the page (used by tests and by keyboard users' scripts).
  Scatter.prototype.clientPoint = function (i) {
    var r = this.canvas.getBoundingClientRect();
    return { x: r.left + this.sx(i), y: r.top + this.sy(i) };
  };

  window.layerscopePlots = [];
  window.layerscopeLinks = LINKS;
  window.layerscopeColor = catColor;
  function init() {
    var roots = document.querySelectorAll("div.plot[data-spec]");
    var order = [];
    for (var k = 0; k < roots.length; k++) {
      var root = roots[k], src = document.getElementById(root.getAttribute("data-spec"));
      if (!src) { continue; }
      var spec = JSON.parse(src.textContent);
      var lid = root.getAttribute("data-link") || ("solo" + k);
      if (!LINKS[lid]) { LINKS[lid] = new Link(lid); order.push(lid); }
      var plot = new Scatter(root, spec, LINKS[lid]);
      LINKS[lid].plots.push(plot);
      window.layerscopePlots.push(plot);
    }
    for (var q = 0; q < order.length; q++) {
      var link = LINKS[order[q]];
      link.mode = link.plots[0].defaultMode();
      var bar = document.getElementById(link.id);
      if (bar) { link.buildBar(bar); }
      for (var p = 0; p < link.plots.length; p++) { link.plots[p].build(); }
      for (var p2 = 0; p2 < link.plots.length; p2++) { link.plots[p2].reset(); }
      link.redraw();
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
"""
