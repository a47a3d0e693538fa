"""The report's inline stylesheet and script.

Both are written by hand for this report (no library fits the need of a single offline file with
no downloads): a responsive layout with a table of contents, and a small canvas scatter plot with
zoom, pan, touch pinch and a hover/tap tooltip. The script reads data only from
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
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: .82em; margin-top: 6px; }
.legend span.sw { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; vertical-align: middle; }
.ls-tooltip { position: absolute; z-index: 10; pointer-events: none; background: rgba(255,255,255,.97); border: 1px solid #8a96a3;
  border-radius: 4px; padding: 6px 8px; font-size: .82em; box-shadow: 0 2px 8px rgba(0,0,0,.18); max-width: 240px; display: none; }
.ls-tooltip canvas { display: block; border: 1px solid var(--line); margin-bottom: 4px; width: 84px; height: 84px; image-rendering: pixelated; }
.ls-tooltip div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
svg.chart { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); }
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
@media (max-width: 600px) {
  figure img.wide { max-width: none; width: 760px; }  /* wide grids stay readable: scroll sideways */
}
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

  function Scatter(root, spec) {
    this.root = root; this.spec = spec;
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
    // colour modes: continuous values first (e.g. a neuron's importance), then categories
    this.modes = [];
    for (var v = 0; v < this.values.length; v++) { this.modes.push({ kind: "value", i: v, name: this.values[v].name }); }
    for (var q = 0; q < this.groups.length; q++) { this.modes.push({ kind: "group", i: q, name: this.groups[q].name }); }
    this.mode = 0;
    this.hover = -1;
    this.sprite = spec.sprite ? document.getElementById(spec.sprite) : null;
    this.thumbs = null;
    if (spec.thumbnails) { this.thumbs = []; }
    this.build();
    this.reset();
  }
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
    if (this.modes.length > 1) {
      var lab = el("label", null, "colour by ");
      var sel = el("select");
      for (var g = 0; g < this.modes.length; g++) { var o = el("option", null, this.modes[g].name); o.value = String(g); sel.appendChild(o); }
      sel.addEventListener("change", function () { self.mode = parseInt(sel.value, 10); self.legend(); self.draw(); });
      lab.appendChild(sel); bar.appendChild(lab);
    }
    bar.appendChild(el("span", "note", this.n + " points \u00b7 wheel/pinch to zoom, drag to pan, hover or tap a point"));
    this.root.appendChild(bar);
    this.canvas = el("canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", spec.title || "scatter plot");
    this.root.appendChild(this.canvas);
    this.leg = el("div", "legend");
    this.root.appendChild(this.leg);
    this.tip = el("div", "ls-tooltip");
    this.root.appendChild(this.tip);
    this.legend();
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
      if (pointers[ev.pointerId] && moved <= 3 && ev.type === "pointerup") { self.pick(ev.clientX - r.left, ev.clientY - r.top); }
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
  Scatter.prototype.colorOf = function (i, usePred) {
    var spec = this.spec, m = this.modes[this.mode];
    if (!m) { return "#1f77b4"; }
    if (m.kind === "value") {
      var val = this.values[m.i], lo = val.range[0], hi = val.range[1];
      return seqColor(hi > lo ? (val.v[i] - lo) / (hi - lo) : 0.5);
    }
    if (usePred && m.i === 0 && spec.pred) { return catColor(spec.pred[i]); }
    return catColor(this.groups[m.i].codes[i]);
  };
  Scatter.prototype.mistaken = function (i) {
    var s = this.spec;
    return !!(s.pred && this.groups.length && s.pred[i] !== null && s.pred[i] !== undefined && s.pred[i] !== this.groups[0].codes[i]);
  };
  Scatter.prototype.wrong = function (i) {
    var s = this.spec, m = this.modes[this.mode];
    return !!(s.pred && m && m.kind === "group" && m.i === 0 && this.groups.length && s.pred[i] !== null && s.pred[i] !== undefined && s.pred[i] !== this.groups[0].codes[i]);
  };
  Scatter.prototype.draw = function () {
    var ctx = this.canvas.getContext("2d"), dpr = this.dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.w, this.h);
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, this.w, this.h);
    var r = this.n > 3000 ? 1.8 : (this.n > 800 ? 2.4 : 3.4);
    var wrongs = [];
    ctx.globalAlpha = 0.8;
    for (var i = 0; i < this.n; i++) {
      if (this.wrong(i)) { wrongs.push(i); continue; }
      var x = this.sx(i), y = this.sy(i);
      if (x < -5 || y < -5 || x > this.w + 5 || y > this.h + 5) { continue; }
      ctx.fillStyle = this.colorOf(i, false);
      ctx.beginPath(); ctx.arc(x, y, r, 0, 6.2832); ctx.fill();
    }
    ctx.globalAlpha = 1; ctx.lineWidth = 1.6;
    for (var k = 0; k < wrongs.length; k++) {  // misclassified: a cross in the predicted class's colour
      var j = wrongs[k], a = this.sx(j), b = this.sy(j), q = r + 1.5;
      ctx.strokeStyle = this.colorOf(j, true);
      ctx.beginPath(); ctx.moveTo(a - q, b - q); ctx.lineTo(a + q, b + q); ctx.moveTo(a - q, b + q); ctx.lineTo(a + q, b - q); ctx.stroke();
    }
    if (this.hover >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(this.sx(this.hover), this.sy(this.hover), r + 4, 0, 6.2832); ctx.stroke();
    }
  };
  Scatter.prototype.nearest = function (px, py, maxd) {
    var best = -1, bd = maxd * maxd;
    for (var i = 0; i < this.n; i++) {
      var dx = this.sx(i) - px, dy = this.sy(i) - py, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  };
  Scatter.prototype.pick = function (px, py) {
    var i = this.nearest(px, py, 14);
    if (i !== this.hover) { this.hover = i; this.draw(); }
    if (i < 0) { this.hideTip(); } else { this.showTip(i); }
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
      var self = this, draw = function () { cv.width = img.naturalWidth || 28; cv.height = img.naturalHeight || 28; cv.getContext("2d").drawImage(img, 0, 0); };
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
    var leg = this.leg, spec = this.spec;
    while (leg.firstChild) { leg.removeChild(leg.firstChild); }
    var m = this.modes[this.mode];
    if (m && m.kind === "value") {
      var val = this.values[m.i];
      leg.appendChild(el("span", null, "colour: " + val.name + " from " + fmt(val.range[0]) + " (purple) to " + fmt(val.range[1]) + " (yellow)"));
      return;
    }
    var g = m ? this.groups[m.i] : null;
    if (!g || !g.names) { return; }
    var shown = g.names.length > 40 ? 40 : g.names.length;
    for (var k = 0; k < shown; k++) {
      var item = el("span"), sw = el("span", "sw");
      sw.style.background = catColor(k);
      item.appendChild(sw); item.appendChild(document.createTextNode(String(g.names[k])));
      leg.appendChild(item);
    }
    if (shown < g.names.length) { leg.appendChild(el("span", null, "\u2026 and " + (g.names.length - shown) + " more")); }
    if (spec.pred && m.i === 0) { leg.appendChild(el("span", null, "\u2715 misclassified (colour = predicted class)")); }
  };
  // Where point i is on the page (used by tests and by keyboard users' scripts).
  Scatter.prototype.clientPoint = function (i) {
    var r = this.canvas.getBoundingClientRect();
    return { x: r.left + this.sx(i), y: r.top + this.sy(i) };
  };

  window.layerscopePlots = [];
  function init() {
    var roots = document.querySelectorAll("div.plot[data-spec]");
    for (var k = 0; k < roots.length; k++) {
      var root = roots[k], src = document.getElementById(root.getAttribute("data-spec"));
      if (!src) { continue; }
      var spec = JSON.parse(src.textContent);
      window.layerscopePlots.push(new Scatter(root, spec));
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
"""
