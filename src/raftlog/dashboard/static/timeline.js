/* raftlog timeline renderer: one drawing for the chaos report and the live dashboard.
 *
 * Plain ES2017, no modules, no dependencies, no build step; works offline.
 *
 *   var view = RaftTimeline.render(container, recording, options);
 *
 * recording (JSON; unknown keys are ignored):
 *   {version: 1, source: "chaos"|"dashboard", t0, duration, nodes: [1, 2, 3],
 *    spans:  [{node, role, term, start, end}]        end null: until the end
 *    faults: [{kind, start, end, nodes, target, detail}]
 *    ops:    [{process, kind, start, end, outcome, value}]
 *    marks:  [{t, node, kind, text}]}
 *   Optional op_buckets ({start, width, ok, fail, info, latency: {kind: {median, max}}})
 *   stands in for ops when the recording left them out (ops_total says how many).
 *
 * options:
 *   width, height   pixels (default: the container's width, or 1200; height from content)
 *   window          [start, end] seconds shown (default: the whole recording)
 *   cursor          seconds: a vertical line (data-cursor)
 *   ops             true: draw the client operations (counts and latency per bucket)
 *   legend          false: no legend row
 *   onScrub(t)      called with the time under the pointer on click and drag
 *
 * Returns {svg, x(t), t(x), setCursor(t)}; setCursor moves the cursor without redrawing.
 * Test hooks: spans are <rect data-node data-role data-term>, faults <g data-fault="kind">,
 * marks <line data-mark="kind" data-node>, the cursor <line data-cursor="t">.
 */
(function (global) {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var ROLE_COLOURS = {
    leader: '#1f5fa8',
    candidate: '#ee8a1c',
    precandidate: '#f6cf7e',
    follower: '#a8c8e8',
    down: '#454545'
  };
  var DARK_ROLES = { leader: true, down: true, candidate: true };
  var OTHER_COLOUR = '#d4d4d4';
  var OUTCOME_COLOURS = { ok: '#3b9a3b', fail: '#d2383a', info: '#e6b01e' };
  var KIND_COLOURS = { append: '#1f5fa8', read: '#8e44ad' };
  var FAULT_COLOUR = '#d62728';
  var MARK_COLOUR = '#111';

  var MARGIN_LEFT = 86;
  var MARGIN_RIGHT = 16;
  var FAULT_ROW_H = 16;
  var LANE_H = 20;
  var LANE_GAP = 4;
  var COUNTS_H = 70;
  var LAT_H = 60;
  var AXIS_H = 30;
  var LEGEND_H = 22;
  var CHAR_PX = 6.2;
  var LABEL_MAX = 60;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG_NS, name);
    if (attrs) {
      for (var key in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, key) && attrs[key] !== undefined &&
            attrs[key] !== null) {
          node.setAttribute(key, String(attrs[key]));
        }
      }
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    var a = attrs || {};
    a.x = x.toFixed(1);
    a.y = y.toFixed(1);
    var node = el('text', a, parent);
    node.textContent = content;
    return node;
  }

  function title(parent, content) {
    var node = el('title', null, parent);
    node.textContent = content;
    return node;
  }

  function num(value, fallback) {
    return typeof value === 'number' && isFinite(value) ? value : fallback;
  }

  function fmtT(t) {
    return Math.abs(t) < 1000 ? t.toFixed(1) : t.toFixed(0);
  }

  function fmtLat(s) {
    return s < 1 ? (s * 1000).toPrecision(3) + ' ms' : s.toPrecision(3) + ' s';
  }

  function truncate(s, n) {
    return s.length <= n ? s : s.slice(0, n - 1) + '\u2026';
  }

  function niceStep(span, target) {
    var raw = span / Math.max(target, 1);
    var mag = raw > 0 ? Math.pow(10, Math.floor(Math.log10(raw))) : 1;
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * mag >= raw) return steps[i] * mag;
    }
    return 10 * mag;
  }

  function axisTicks(lo, hi, target) {
    var step = niceStep(hi - lo, target);
    var out = [];
    var first = Math.ceil(lo / step - 1e-9);
    for (var k = first; k * step <= hi + 1e-9; k++) out.push(+(k * step).toFixed(9));
    return out;
  }

  function median(sorted) {
    var n = sorted.length;
    var mid = n >> 1;
    return n % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function recordingEnd(rec) {
    var end = num(rec.duration, 0);
    var i;
    var spans = rec.spans || [];
    for (i = 0; i < spans.length; i++) end = Math.max(end, num(spans[i].end, num(spans[i].start, 0)));
    var faults = rec.faults || [];
    for (i = 0; i < faults.length; i++) end = Math.max(end, num(faults[i].end, num(faults[i].start, 0)));
    return end > 0 ? end : 1;
  }

  /* Operations per bucket: counts by outcome (at completion, or invocation when it never
   * returned), and the median and maximum latency of ok operations per kind. */
  function bucketOps(rec, lo, hi, width) {
    var pre = rec.op_buckets;
    if ((!rec.ops || rec.ops.length === 0) && pre && num(pre.width, 0) > 0) {
      return {
        start: num(pre.start, 0), width: pre.width, n: (pre.ok || []).length,
        ok: pre.ok || [], fail: pre.fail || [], info: pre.info || [], latency: pre.latency || {}
      };
    }
    var n = Math.max(1, Math.ceil((hi - lo) / width - 1e-9));
    var b = { start: lo, width: width, n: n, ok: [], fail: [], info: [], latency: {} };
    var lats = {};
    var i;
    for (i = 0; i < n; i++) { b.ok.push(0); b.fail.push(0); b.info.push(0); }
    var ops = rec.ops || [];
    for (i = 0; i < ops.length; i++) {
      var op = ops[i];
      var start = num(op.start, null);
      if (start === null) continue;
      var end = num(op.end, null);
      var at = end === null ? start : end;
      if (at < lo || at > hi) continue;
      var k = Math.min(n - 1, Math.max(0, Math.floor((at - lo) / width)));
      if (op.outcome === 'ok') {
        b.ok[k]++;
        if (end !== null) {
          var perKind = lats[op.kind] || (lats[op.kind] = []);
          (perKind[k] || (perKind[k] = [])).push(Math.max(0, end - start));
        }
      } else if (op.outcome === 'fail') {
        b.fail[k]++;
      } else {
        b.info[k]++;
      }
    }
    for (var kind in lats) {
      if (!Object.prototype.hasOwnProperty.call(lats, kind)) continue;
      var med = [];
      var mx = [];
      for (i = 0; i < n; i++) {
        var values = lats[kind][i];
        if (values && values.length) {
          values.sort(function (p, q) { return p - q; });
          med.push(median(values));
          mx.push(values[values.length - 1]);
        } else {
          med.push(null);
          mx.push(null);
        }
      }
      b.latency[kind] = { median: med, max: mx };
    }
    return b;
  }

  function assignFaultRows(faults, x, endT) {
    var rows = [];
    var out = [];
    var sorted = faults.slice().sort(function (p, q) { return num(p.start, 0) - num(q.start, 0); });
    for (var i = 0; i < sorted.length; i++) {
      var f = sorted[i];
      var start = num(f.start, null);
      if (start === null) continue;
      var end = num(f.end, null);
      var label = truncate((String(f.kind || '?') + ' ' + String(f.target || '')).trim(), LABEL_MAX);
      var x0 = x(start);
      var x1 = Math.max(x(end === null ? endT : end), x0 + label.length * CHAR_PX + 6);
      var row = -1;
      for (var r = 0; r < rows.length; r++) {
        if (rows[r] + 4 <= x0) { row = r; break; }
      }
      if (row < 0) { row = rows.length; rows.push(x1); } else { rows[row] = x1; }
      out.push({ fault: f, start: start, end: end, label: label, row: row });
    }
    return { faults: out, rows: rows.length };
  }

  function render(container, recording, options) {
    var opt = options || {};
    var rec = recording || {};
    var duration = recordingEnd(rec);
    var win = opt.window && opt.window.length === 2 ? opt.window : [0, duration];
    var lo = num(win[0], 0);
    var hi = num(win[1], duration);
    if (!(hi > lo)) hi = lo + 1;
    var width = Math.max(200, num(opt.width, container.clientWidth || 1200));
    var plotW = width - MARGIN_LEFT - MARGIN_RIGHT;
    var scale = plotW / (hi - lo);
    var x = function (t) { return MARGIN_LEFT + (t - lo) * scale; };
    var tOf = function (px) { return lo + (px - MARGIN_LEFT) / scale; };
    var clampX = function (px) { return Math.max(MARGIN_LEFT - 1, Math.min(width - MARGIN_RIGHT + 1, px)); };

    var nodes = (rec.nodes || []).slice();
    var spans = rec.spans || [];
    var i;
    for (i = 0; i < spans.length; i++) {
      if (nodes.indexOf(spans[i].node) < 0) nodes.push(spans[i].node);
    }
    var showOps = !!opt.ops;
    var showLegend = opt.legend !== false;
    var layout = assignFaultRows(rec.faults || [], x, duration);
    var faultRows = Math.max(1, layout.rows);

    // Vertical layout; with options.height the lanes take what the rest leaves.
    var fixed = 8 + faultRows * FAULT_ROW_H + 8 + AXIS_H + (showLegend ? LEGEND_H : 0) +
      (showOps ? COUNTS_H + LAT_H + 2 * AXIS_H : 0);
    var laneH = LANE_H;
    var nLanes = Math.max(1, nodes.length);
    if (num(opt.height, 0) > 0) {
      laneH = Math.max(6, Math.min(60, (opt.height - fixed) / nLanes - LANE_GAP));
    }
    var faultsTop = 8;
    var lanesTop = faultsTop + faultRows * FAULT_ROW_H + 8;
    var lanesBottom = lanesTop + nLanes * (laneH + LANE_GAP) - LANE_GAP;
    var countsTop = lanesBottom + AXIS_H;
    var countsBottom = countsTop + COUNTS_H;
    var latTop = countsBottom + AXIS_H;
    var latBottom = latTop + LAT_H;
    var plotBottom = showOps ? latBottom : lanesBottom;
    var legendTop = plotBottom + AXIS_H;
    var height = num(opt.height, 0) > 0 ? opt.height : legendTop + (showLegend ? LEGEND_H : 0);

    var svg = el('svg', {
      xmlns: SVG_NS, width: width, height: Math.round(height),
      viewBox: '0 0 ' + width + ' ' + Math.round(height),
      'class': 'raft-timeline', 'font-family': 'system-ui, sans-serif', 'font-size': 11
    });
    var frag = document.createDocumentFragment();
    var root = el('g', null, frag);
    var clipId = 'raft-timeline-clip-' + (++render.count);
    var clip = el('clipPath', { id: clipId }, root);
    el('rect', { x: MARGIN_LEFT, y: 0, width: plotW, height: height }, clip);

    // Grid and axis labels.
    var ticks = axisTicks(lo, hi, Math.max(2, Math.round(plotW / 110)));
    var grid = el('g', { stroke: '#e4e4e4', 'stroke-width': 1 }, root);
    for (i = 0; i < ticks.length; i++) {
      var gx = x(ticks[i]).toFixed(1);
      el('line', { x1: gx, y1: faultsTop, x2: gx, y2: plotBottom }, grid);
    }
    var axes = showOps ? [lanesBottom, countsBottom, latBottom] : [lanesBottom];
    var axisG = el('g', { fill: '#555', 'text-anchor': 'middle', 'data-axis': 'time' }, root);
    for (var a = 0; a < axes.length; a++) {
      for (i = 0; i < ticks.length; i++) {
        text(axisG, x(ticks[i]), axes[a] + 13, String(ticks[i]));
      }
    }
    text(root, MARGIN_LEFT + plotW / 2, plotBottom + 26, 'time since start (s)',
      { 'text-anchor': 'middle', fill: '#333' });

    // Faults: a bar with its label in the fault rows, and a faint band over the lanes of
    // the nodes it touched (all lanes when it names none).
    text(root, MARGIN_LEFT - 8, faultsTop + 12, 'faults', { 'text-anchor': 'end', fill: '#333' });
    if (!layout.faults.length) {
      text(root, MARGIN_LEFT + 4, faultsTop + 12, 'none injected', { fill: '#777' });
    }
    var laneIndex = {};
    for (i = 0; i < nodes.length; i++) laneIndex[nodes[i]] = i;
    var laneY = function (node) { return lanesTop + laneIndex[node] * (laneH + LANE_GAP); };
    var plot = el('g', { 'clip-path': 'url(#' + clipId + ')' }, root);
    var bands = el('g', null, plot);
    var faultG = el('g', null, plot);
    for (i = 0; i < layout.faults.length; i++) {
      var lf = layout.faults[i];
      var f = lf.fault;
      var fEnd = lf.end === null ? duration : Math.max(lf.end, lf.start);
      if (fEnd < lo || lf.start > hi) continue;
      var fx0 = x(lf.start);
      var fw = Math.max(x(fEnd) - fx0, 1.5);
      var g = el('g', { 'data-fault': String(f.kind || '?') }, faultG);
      title(g, lf.label + ': ' + fmtT(lf.start) + ' s \u2013 ' +
        (lf.end === null ? 'still active at the end' : fmtT(lf.end) + ' s') +
        (f.detail ? '\n' + String(f.detail) : ''));
      var fy = faultsTop + lf.row * FAULT_ROW_H;
      el('rect', { x: fx0.toFixed(1), y: fy + 1, width: fw.toFixed(1), height: FAULT_ROW_H - 2,
        fill: FAULT_COLOUR, 'fill-opacity': 0.35 }, g);
      text(g, fx0 + 3, fy + 12, lf.label, { fill: '#7a1010' });
      var touched = Array.isArray(f.nodes) && f.nodes.length ? f.nodes : null;
      for (var n = 0; n < nodes.length; n++) {
        if (touched && touched.indexOf(nodes[n]) < 0) continue;
        el('rect', { x: fx0.toFixed(1), y: (laneY(nodes[n]) - 2).toFixed(1), width: fw.toFixed(1),
          height: laneH + 4, fill: FAULT_COLOUR, 'fill-opacity': 0.12 }, bands);
      }
    }

    // Node lanes and their role spans.
    for (i = 0; i < nodes.length; i++) {
      var ly = laneY(nodes[i]);
      text(root, MARGIN_LEFT - 8, ly + laneH / 2 + 4, 'node ' + nodes[i],
        { 'text-anchor': 'end', fill: '#333' });
      el('rect', { x: MARGIN_LEFT, y: ly.toFixed(1), width: plotW, height: laneH.toFixed(1),
        fill: '#f4f4f4', 'fill-opacity': 0.6 }, bands);
    }
    if (!nodes.length) {
      text(root, MARGIN_LEFT + 4, lanesTop + 14, 'no node states recorded', { fill: '#777' });
    }
    var spanG = el('g', { stroke: '#fff', 'stroke-width': 0.5 }, plot);
    var labelG = el('g', { 'text-anchor': 'middle', 'font-weight': 'bold', 'pointer-events': 'none' }, plot);
    for (i = 0; i < spans.length; i++) {
      var s = spans[i];
      var sStart = num(s.start, null);
      if (sStart === null || !(s.node in laneIndex)) continue;
      var sEnd = num(s.end, duration);
      if (sEnd < lo || sStart > hi) continue;
      var sx0 = x(Math.max(sStart, lo));
      var sx1 = x(Math.min(sEnd, hi));
      var role = String(s.role);
      var term = s.term === null || s.term === undefined ? '' : String(s.term);
      var sy = laneY(s.node);
      var r = el('rect', { x: sx0.toFixed(1), y: sy.toFixed(1), width: Math.max(sx1 - sx0, 0.5).toFixed(2),
        height: laneH.toFixed(1), fill: ROLE_COLOURS[role] || OTHER_COLOUR,
        'data-node': s.node, 'data-role': role, 'data-term': term }, spanG);
      title(r, 'node ' + s.node + ': ' + role + (term ? ', term ' + term : '') + ', ' +
        fmtT(sStart) + '\u2013' + (s.end === null || s.end === undefined ? 'end' : fmtT(sEnd)) + ' s');
      if (term) {
        var label = 'T' + term;
        if (sx1 - sx0 >= label.length * CHAR_PX + 6 && laneH >= 12) {
          text(labelG, (sx0 + sx1) / 2, sy + laneH / 2 + 4, label,
            { fill: DARK_ROLES[role] ? '#fff' : '#333' });
        }
      }
    }

    // Marks: a tick at the top of the node's lane (over every lane when it names none).
    var marks = rec.marks || [];
    var markG = el('g', { stroke: MARK_COLOUR, 'stroke-width': 1.5 }, plot);
    for (i = 0; i < marks.length; i++) {
      var m = marks[i];
      var mt = num(m.t, null);
      if (mt === null || mt < lo || mt > hi) continue;
      var mx = x(mt).toFixed(1);
      var top = m.node in laneIndex ? laneY(m.node) - 3 : lanesTop - 3;
      var bottom = m.node in laneIndex ? laneY(m.node) + laneH * 0.45 : lanesBottom + 3;
      var line = el('line', { x1: mx, y1: top.toFixed(1), x2: mx, y2: bottom.toFixed(1),
        'data-mark': String(m.kind || ''), 'data-node': m.node === null ? undefined : m.node }, markG);
      title(line, fmtT(mt) + ' s' + (m.node === null || m.node === undefined ? '' : ' node ' + m.node) +
        ': ' + String(m.text || m.kind || ''));
    }

    if (showOps) drawOps(root, plot, rec, lo, hi, x, plotW, countsTop, countsBottom, latTop, latBottom);
    if (showLegend) drawLegend(root, legendTop + 4, showOps);

    // The cursor, and scrubbing.
    var cursor = el('line', { y1: faultsTop, y2: plotBottom, stroke: '#000', 'stroke-width': 1.5,
      'pointer-events': 'none', visibility: 'hidden' }, root);
    var setCursor = function (t) {
      var ct = num(t, null);
      if (ct === null) {
        cursor.setAttribute('visibility', 'hidden');
        cursor.removeAttribute('data-cursor');
        return;
      }
      var cx = clampX(x(ct)).toFixed(1);
      cursor.setAttribute('x1', cx);
      cursor.setAttribute('x2', cx);
      cursor.setAttribute('data-cursor', String(ct));
      cursor.setAttribute('visibility', 'visible');
    };
    setCursor(opt.cursor);

    if (typeof opt.onScrub === 'function') {
      var onScrub = opt.onScrub;
      var hit = el('rect', { x: MARGIN_LEFT, y: 0, width: plotW, height: plotBottom,
        fill: 'transparent', 'data-scrub': '' });
      root.insertBefore(hit, root.firstChild.nextSibling);  // under the drawing, after clip
      svg.style.cursor = 'col-resize';
      svg.style.touchAction = 'none';
      var dragging = false;
      var scrubAt = function (ev) {
        var box = svg.getBoundingClientRect();
        var px = (ev.clientX - box.left) * (width / (box.width || width));
        var t = Math.max(lo, Math.min(hi, tOf(px)));
        onScrub(t);
      };
      svg.addEventListener('pointerdown', function (ev) {
        if (ev.button !== 0) return;
        var box = svg.getBoundingClientRect();
        var py = (ev.clientY - box.top) * (height / (box.height || height));
        if (py > plotBottom + AXIS_H) return;  // the legend
        dragging = true;
        if (svg.setPointerCapture) svg.setPointerCapture(ev.pointerId);
        scrubAt(ev);
        ev.preventDefault();
      });
      svg.addEventListener('pointermove', function (ev) { if (dragging) scrubAt(ev); });
      var stop = function () { dragging = false; };
      svg.addEventListener('pointerup', stop);
      svg.addEventListener('pointercancel', stop);
    }

    svg.appendChild(frag);
    while (container.firstChild) container.removeChild(container.firstChild);
    container.appendChild(svg);
    return { svg: svg, x: x, t: tOf, setCursor: setCursor };
  }
  render.count = 0;

  function drawOps(root, plot, rec, lo, hi, x, plotW, countsTop, countsBottom, latTop, latBottom) {
    var want = Math.max((hi - lo) / Math.max(1, plotW / 4), 1e-3);
    var width = niceStep(want * 5, 5);  // a 1-2-5 width near four pixels per bucket
    var b = bucketOps(rec, lo, hi, width);
    var total = rec.ops && rec.ops.length ? rec.ops.length : num(rec.ops_total, 0);
    text(root, MARGIN_LEFT - 8, countsTop + 12, 'ops', { 'text-anchor': 'end', fill: '#333' });
    text(root, MARGIN_LEFT - 8, countsTop + 25, '/' + b.width + ' s',
      { 'text-anchor': 'end', fill: '#777', 'font-size': 9 });
    text(root, MARGIN_LEFT + 2, latTop - 5, 'latency of ok operations (log scale; median solid, max dashed)',
      { fill: '#333' });

    var peak = 0;
    var i;
    for (i = 0; i < b.n; i++) peak = Math.max(peak, (b.ok[i] || 0) + (b.fail[i] || 0) + (b.info[i] || 0));
    var countsG = el('g', { 'data-ops': 'counts' }, plot);
    if (!total && !peak) {
      text(root, MARGIN_LEFT + 4, countsTop + 14, 'no operations', { fill: '#777' });
    }
    var yCount = function (c) { return countsBottom - (peak ? c / peak * (COUNTS_H - 4) : 0); };
    var outcomes = ['ok', 'fail', 'info'];
    var bw = Math.max(b.width * (x(1) - x(0)), 0.5);
    for (i = 0; i < b.n; i++) {
      var base = 0;
      var bx = x(b.start + i * b.width);
      if (bx + bw < MARGIN_LEFT || bx > MARGIN_LEFT + plotW) continue;
      var tip = [];
      for (var o = 0; o < outcomes.length; o++) {
        var c = b[outcomes[o]][i] || 0;
        if (!c) continue;
        tip.push(c + ' ' + outcomes[o]);
        el('rect', { x: bx.toFixed(1), y: yCount(base + c).toFixed(1), width: bw.toFixed(2),
          height: (yCount(base) - yCount(base + c)).toFixed(1), fill: OUTCOME_COLOURS[outcomes[o]],
          'data-outcome': outcomes[o] }, countsG);
        base += c;
      }
      if (tip.length) {
        var cover = el('rect', { x: bx.toFixed(1), y: countsTop, width: bw.toFixed(2),
          height: COUNTS_H, fill: 'transparent' }, countsG);
        title(cover, fmtT(b.start + i * b.width) + '\u2013' + fmtT(b.start + (i + 1) * b.width) +
          ' s: ' + tip.join(', '));
      }
    }
    if (peak) text(root, MARGIN_LEFT - 8, countsTop + 40, 'max ' + peak,
      { 'text-anchor': 'end', fill: '#777', 'font-size': 9 });

    // Latency of ok operations on a log scale: median solid, maximum dashed.
    var minL = Infinity;
    var maxL = 0;
    var kinds = Object.keys(b.latency || {});
    for (var k = 0; k < kinds.length; k++) {
      var series = [b.latency[kinds[k]].median || [], b.latency[kinds[k]].max || []];
      for (var s = 0; s < 2; s++) {
        for (i = 0; i < series[s].length; i++) {
          var v = series[s][i];
          if (typeof v === 'number' && v > 0) { minL = Math.min(minL, v); maxL = Math.max(maxL, v); }
        }
      }
    }
    if (!(maxL > 0)) {
      text(root, MARGIN_LEFT + 4, latTop + 14, 'no ok operations', { fill: '#777' });
      return;
    }
    var logLo = Math.floor(Math.log10(minL));
    var logHi = Math.max(logLo + 1, Math.ceil(Math.log10(maxL)));
    var yLat = function (v) {
      return latBottom - (Math.log10(Math.max(v, Math.pow(10, logLo))) - logLo) / (logHi - logLo) * (LAT_H - 4);
    };
    var latAxis = el('g', { fill: '#777', 'font-size': 9, 'text-anchor': 'end' }, root);
    for (var e = logLo; e <= logHi; e++) {
      text(latAxis, MARGIN_LEFT - 4, yLat(Math.pow(10, e)) + 3, fmtLat(Math.pow(10, e)));
    }
    var latG = el('g', { fill: 'none', 'data-ops': 'latency' }, plot);
    for (k = 0; k < kinds.length; k++) {
      var colour = KIND_COLOURS[kinds[k]] || '#555';
      var lines = [['median', b.latency[kinds[k]].median || [], 1.2, null],
        ['max', b.latency[kinds[k]].max || [], 0.8, '4 3']];
      for (var l = 0; l < lines.length; l++) {
        var pts = [];
        var values = lines[l][1];
        for (i = 0; i <= values.length; i++) {
          var val = values[i];
          if (i < values.length && typeof val === 'number') {
            pts.push(x(b.start + (i + 0.5) * b.width).toFixed(1) + ',' + yLat(val).toFixed(1));
          } else if (pts.length) {
            var pl = el('polyline', { points: pts.join(' '), stroke: colour,
              'stroke-width': lines[l][2], 'stroke-dasharray': lines[l][3] }, latG);
            title(pl, kinds[k] + ' ' + lines[l][0] + ' latency');
            pts = [];
          }
        }
      }
    }
  }

  function drawLegend(root, y, withOps) {
    var g = el('g', { 'data-legend': '' }, root);
    var lx = MARGIN_LEFT;
    var item = function (colour, label, opacity) {
      el('rect', { x: lx, y: y, width: 11, height: 11, fill: colour, 'fill-opacity': opacity || 1,
        stroke: '#999', 'stroke-width': 0.5 }, g);
      text(g, lx + 15, y + 10, label, { fill: '#333' });
      lx += 15 + label.length * CHAR_PX + 14;
    };
    for (var role in ROLE_COLOURS) {
      if (Object.prototype.hasOwnProperty.call(ROLE_COLOURS, role)) item(ROLE_COLOURS[role], role);
    }
    item(FAULT_COLOUR, 'fault', 0.35);
    if (withOps) {
      for (var o in OUTCOME_COLOURS) {
        if (Object.prototype.hasOwnProperty.call(OUTCOME_COLOURS, o)) item(OUTCOME_COLOURS[o], o);
      }
      for (var kind in KIND_COLOURS) {
        if (Object.prototype.hasOwnProperty.call(KIND_COLOURS, kind)) item(KIND_COLOURS[kind], kind + ' latency');
      }
    }
  }

  global.RaftTimeline = {
    version: 1,
    render: render,
    colours: { roles: ROLE_COLOURS, outcomes: OUTCOME_COLOURS, kinds: KIND_COLOURS, fault: FAULT_COLOUR }
  };
})(typeof window !== 'undefined' ? window : this);
