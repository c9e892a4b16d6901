/* raftlog dashboard: a live view of a real cluster (RaftScope's ideas, raftlog's feeds).
 *
 * Plain JavaScript, no build step, no dependencies. Everything the page shows is computed
 * from one recording (raw events from every node's GET /v1/events, status polls, log
 * tails, faults and appends done from here), so that the live view, a paused view and a
 * replayed recording are drawn by the same code: the view at time T.
 *
 * Feeds and test hooks: docs/dashboard.md.
 */
(function () {
  "use strict";

  // -- constants -------------------------------------------------------------------------

  const PROBE_EVERY_MS = 1000; // status poll of a node believed up (liveness + timers)
  const PROBE_TIMEOUT_MS = 1500;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 4000;
  const LOG_MIN_GAP_MS = 250; // at most 4 log-tail requests per second per node
  const CONTROL_POLL_MS = 1000;
  const DOT_S = 0.45; // how long a message dot takes along its chord
  const MAX_DOTS = 60; // never more dots than this at once; the rest are counted
  const MAX_EVENTS = 40000; // the recording keeps the newest events
  const TRUNCATION_SHOWN_S = 60;
  const FRAME_MS = 40; // the ring at 25 frames a second at most
  const PANELS_MS = 200; // grid, health and the other panels at 5 a second at most
  const TIMELINE_MS = 2000;
  const LOADED_LOG_GAP_MS = 1000; // under load (Aggregate events), a log tail a second

  const KINDS = [
    "status", "Message", "Held", "Released", "Aggregate",
    "NodeStarted", "ElectionTimeout", "PreVoteStarted", "ElectionStarted",
    "VoteRequestReceived", "VoteGranted", "VoteRefused", "VoteReceived", "BecameLeader",
    "ElectionLost", "SteppedDown", "LeaderFound", "QuorumLost", "HeartbeatSent",
    "HeartbeatReceived", "ProposalReceived", "EntriesAppended", "LogTruncated",
    "EntryCommitted", "SnapshotSent", "SnapshotFailed", "SnapshotInstalled",
    "SnapshotIgnored", "LogCompacted", "ConfChangeProposed", "ConfChanged", "NodeRemoved",
    "LeaderRemoved", "PeerOffline", "PeerOnline", "TransferStarted", "TransferAborted",
    "ReadIndexConfirmed",
  ];
  // Events after which a follower's election clock starts again from zero.
  const CLOCK_RESETS = new Set(["HeartbeatReceived", "EntriesAppended", "SnapshotInstalled", "LeaderFound"]);

  const MSG_COLOURS = {
    vote: "#8e44ad", prevote: "#c39bd3", append: "#2f6fdf", heartbeat: "#9aa3b2",
    timeout_now: "#e67e22", snapshot: "#16a085",
  };

  const SVGNS = "http://www.w3.org/2000/svg";
  const now = () => Date.now() / 1000;

  // -- small helpers ---------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function s(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function termColour(term) {
    if (!term) return "#7d8796";
    return `hsl(${(term * 137.508 + 200) % 360}, 58%, 47%)`;
  }

  function msgColour(type) {
    const base = String(type || "").replace(/_resp$/, "");
    return MSG_COLOURS[base] || "#555";
  }

  /** The last item of ``arr`` (sorted by ``t``) at or before ``t``, or undefined. */
  function lastAt(arr, t) {
    let lo = 0;
    let hi = arr.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (arr[mid].t <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found >= 0 ? arr[found] : undefined;
  }

  /** The index of the first item of ``arr`` with ``.t`` >= ``t``. */
  function firstFrom(arr, t) {
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (arr[mid].t < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function cap(arr, max) {
    if (arr.length > max) arr.splice(0, arr.length - Math.floor(max * 0.75));
  }

  function fmtTime(t) {
    if (!t) return "";
    const d = new Date(t * 1000);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  async function fetchJSON(url, options, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs || 5000);
    try {
      const resp = await fetch(url, { ...(options || {}), signal: ctl.signal, cache: "no-store" });
      let body = null;
      const text = await resp.text();
      try { body = text ? JSON.parse(text) : null; } catch (_e) { body = { error: text }; }
      if (!resp.ok) {
        const err = new Error((body && body.error) || `HTTP ${resp.status}`);
        err.status = resp.status;
        err.body = body;
        throw err;
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // -- the recording -----------------------------------------------------------------------

  function newRecording(t0) {
    return {
      t0: t0 || now(),
      tEnd: t0 || now(),
      events: [], // raw: {t, node, kind, data}
      faults: [], // {kind, nodes, start, end}
      ops: [], // {t, kind, node, data, ok, index, term, error}
      marks: [], // {t, node, kind, text}
      messages: [], // Message events: {t, node, data}
      byNode: new Map(),
    };
  }

  function nodeIndex(rec, id) {
    let idx = rec.byNode.get(id);
    if (!idx) {
      idx = { status: [], clock: [], log: [], updown: [], trunc: [], votes: [], agg: [], granted: [], lastRole: null, lastTerm: 0 };
      rec.byNode.set(id, idx);
    }
    return idx;
  }

  /** Add one event to a recording and to its per-node indexes. */
  function ingest(rec, ev, keepRaw) {
    const { t, node, kind, data } = ev;
    if (keepRaw !== false) {
      rec.events.push(ev);
      if (rec.events.length > MAX_EVENTS) cap(rec.events, MAX_EVENTS);
    }
    if (t > rec.tEnd) rec.tEnd = t;
    const idx = nodeIndex(rec, node);
    switch (kind) {
      case "status": {
        idx.status.push({ t, s: data });
        idx.clock.push({
          t, elapsed: data.election_elapsed || 0, timeout: data.election_timeout || 0,
          tick_s: data.tick_s || 0, clock: data.clock || "real",
        });
        const role = String(data.state || "").toLowerCase();
        if (role === "leader" && (idx.lastRole !== "leader" || idx.lastTerm !== data.term)) {
          mark(rec, t, node, "leader", `node ${node} leads term ${data.term}`);
        }
        if (role === "leader" && data.commit > (idx.lastCommit || 0) && idx.lastCommit !== undefined) {
          const last = idx.lastCommitMark || 0;
          if (t - last >= 1) { mark(rec, t, node, "commit", `committed up to ${data.commit}`); idx.lastCommitMark = t; }
        }
        idx.lastCommit = data.commit;
        idx.lastRole = role;
        idx.lastTerm = data.term;
        cap(idx.status, 6000);
        cap(idx.clock, 6000);
        break;
      }
      case "log":
        idx.log.push({ t, log: data });
        cap(idx.log, 3000);
        break;
      case "up":
      case "down":
        idx.updown.push({ t, up: kind === "up" });
        break;
      case "LogTruncated":
        idx.trunc.push({ t, from: data.from_index, old: data.old_last });
        mark(rec, t, node, "truncated", `node ${node} log truncated from ${data.from_index}`);
        break;
      case "PreVoteStarted":
      case "ElectionStarted":
        idx.votes.push({ t, reset: true, pre: kind === "PreVoteStarted" });
        if (kind === "ElectionStarted") mark(rec, t, node, "election", `node ${node} starts an election for term ${data.term}`);
        break;
      case "VoteGranted":
        if (!data.pre_vote) idx.granted.push({ t, candidate: data.candidate, term: data.candidate_term });
        break;
      case "VoteReceived":
        idx.votes.push({ t, voter: data.voter, granted: !!data.granted, pre: !!data.pre_vote });
        break;
      case "Message":
        rec.messages.push({ t, node, data });
        cap(rec.messages, 20000);
        break;
      case "Aggregate":
        idx.agg.push({ t, counts: data.counts || {}, window_s: data.window_s || 0.25 });
        cap(idx.agg, 2000);
        break;
      default:
        break;
    }
    if (CLOCK_RESETS.has(kind) || (kind === "VoteGranted" && !data.pre_vote)) {
      const prev = idx.clock[idx.clock.length - 1];
      if (prev) idx.clock.push({ ...prev, t, elapsed: 0 });
    }
  }

  function mark(rec, t, node, kind, text) {
    rec.marks.push({ t, node, kind, text });
    cap(rec.marks, 3000);
  }

  /** Role spans per node, for the timeline and the export. */
  function buildSpans(rec, tEnd) {
    const spans = [];
    for (const [id, idx] of rec.byNode) {
      const changes = [];
      for (const x of idx.status) changes.push({ t: x.t, role: String(x.s.state || "").toLowerCase(), term: x.s.term });
      for (const x of idx.updown) changes.push({ t: x.t, down: !x.up });
      changes.sort((a, b) => a.t - b.t);
      let cur = null;
      let down = false;
      let role = null;
      let term = 0;
      for (const c of changes) {
        if ("down" in c) down = c.down; else { role = c.role; term = c.term; }
        const r = down ? "down" : role;
        if (!r) continue;
        if (!cur || cur.role !== r || cur.term !== term) {
          if (cur) { cur.end = c.t; spans.push(cur); }
          cur = { node: id, role: r, term, start: c.t, end: tEnd };
        }
      }
      if (cur) { cur.end = Math.max(cur.start, tEnd); spans.push(cur); }
    }
    return spans;
  }

  function exportRecording(rec) {
    const out = timelineRecording(rec, Math.max(rec.tEnd, rec.t0));
    out.events = rec.events.slice(); // raw, with absolute times (t0 + seconds)
    return out;
  }

  function importRecording(obj) {
    if (!obj || obj.version !== 1 || !Array.isArray(obj.events)) {
      throw new Error("not a dashboard recording (version 1 with events)");
    }
    const rec = newRecording(obj.t0);
    const events = obj.events.slice().sort((a, b) => a.t - b.t);
    for (const ev of events) ingest(rec, ev);
    const abs = (t) => (typeof t === "number" ? obj.t0 + t : null);
    if (Array.isArray(obj.marks)) rec.marks = obj.marks.map((m) => ({ ...m, t: abs(m.t) }));
    rec.faults = (obj.faults || []).map((f) => ({ kind: f.kind, nodes: f.nodes || [], start: abs(f.start), end: abs(f.end) }));
    rec.ops = (obj.ops || []).map((o) => ({ t: abs(o.start), done: abs(o.end), kind: o.kind, data: o.value, ok: o.outcome === "ok" }));
    rec.tEnd = Math.max(rec.tEnd, obj.t0 + (obj.duration || 0));
    for (const id of obj.nodes || []) nodeIndex(rec, id);
    return rec;
  }

  // -- page state ----------------------------------------------------------------------------

  const app = {
    nodes: new Map(), // id -> live connection state
    live: newRecording(),
    rec: null, // the recording the view shows (live, or an imported one)
    paused: false,
    cursor: null, // the time shown when paused / scrubbing (null: live)
    replay: false, // showing an imported recording
    showHeartbeats: false,
    selected: null,
    control: null, // {url, token}
    cluster: null, // the supervisor's last answer
    heldSeen: new Map(), // "node:id" -> first time seen (for "the oldest held message")
    released: new Set(), // "node:id" delivered or dropped from here (node ids only grow)
    chosenMsg: null,
    lastFrame: 0,
    lastPanels: 0,
    dirty: true,
    layoutKey: null,
    gridKey: "",
    healthKey: "",
    heldKey: "",
    controlKey: "",
    timelineAt: 0,
  };
  app.rec = app.live;

  function record(node, kind, data, t) {
    const ev = { t: t || (data && typeof data.t === "number" ? data.t : now()), node, kind, data };
    ingest(app.live, ev);
    return ev;
  }

  // -- discovery ---------------------------------------------------------------------------

  function readControlFragment() {
    const frag = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (frag.get("control") && frag.get("token")) {
      const control = { url: frag.get("control").replace(/\/+$/, ""), token: frag.get("token") };
      try { sessionStorage.setItem("raftlog.control", JSON.stringify(control)); } catch (_e) { /* private mode */ }
      // Keep the token out of the address bar and the history.
      history.replaceState(null, "", location.pathname + location.search);
      return control;
    }
    try {
      const saved = JSON.parse(sessionStorage.getItem("raftlog.control") || "null");
      if (saved && saved.url && saved.token) return saved;
    } catch (_e) { /* nothing saved */ }
    return null;
  }

  function addNode(id, url) {
    if (!Number.isInteger(id)) return;
    let n = app.nodes.get(id);
    if (!n) {
      n = {
        id, url: url ? url.replace(/\/+$/, "") : null, es: null, up: false, fails: 0,
        backoff: BACKOFF_MIN_MS, probeTimer: null, probing: false,
        logKey: "", logInflight: false, logLastAt: 0, logTimer: null, wantLog: false,
        heldBy: false, status: null,
      };
      app.nodes.set(id, n);
      nodeIndex(app.live, id);
      if (app.selected === null) app.selected = id;
      if (n.url) probeSoon(n, 0);
    } else if (url && !n.url) {
      n.url = url.replace(/\/+$/, "");
      probeSoon(n, 0);
    }
  }

  async function discover() {
    const params = new URLSearchParams(location.search);
    const listed = (params.get("nodes") || "").split(",").map((u) => u.trim()).filter(Boolean);
    const seeds = listed.length ? listed : (location.protocol.startsWith("http") ? [location.origin] : []);
    if (app.control) await pollControl();
    if (!seeds.length && !app.nodes.size) {
      app.noCluster = "no cluster: open this page from a node, add ?nodes=http://host:port,... or import a recording";
      return;
    }
    for (const seed of seeds) {
      const url = seed.replace(/\/+$/, "");
      try {
        const st = await fetchJSON(url + "/v1/status", {}, PROBE_TIMEOUT_MS);
        addNode(st.id, url);
        if (listed.length) continue; // the list names every node
        const known = await fetchJSON(url + "/v1/nodes", {}, PROBE_TIMEOUT_MS).catch(() => null);
        for (const m of (known && known.nodes) || []) addNode(m.id, m.client_url);
        for (const v of [...(st.voters || []), ...(st.learners || [])]) addNode(v, null);
      } catch (_e) {
        app.noCluster = `cannot reach ${url}; retrying`;
        setTimeout(discover, 2000);
        return;
      }
    }
  }

  // -- one node's feeds ----------------------------------------------------------------------

  function probeSoon(n, ms) {
    clearTimeout(n.probeTimer);
    n.probeTimer = setTimeout(() => probe(n), ms);
  }

  function supervisorSaysDown(n) {
    if (!app.cluster) return false;
    const c = app.cluster.nodes.find((x) => x.id === n.id);
    return !!c && (!c.running || c.paused);
  }

  async function probe(n) {
    if (!n.url || n.probing) return;
    if (n.halting) { setUp(n, false); closeEvents(n); return; } // the supervisor's poll wakes it
    if (supervisorSaysDown(n)) { setUp(n, false); probeSoon(n, BACKOFF_MAX_MS); return; }
    if (n.up && n.es && now() - (n.lastEventAt || 0) < PROBE_EVERY_MS / 1000 + 0.5) {
      probeSoon(n, PROBE_EVERY_MS); // its event stream speaks: it is alive, no need to ask
      return;
    }
    n.probing = true;
    try {
      const st = await fetchJSON(n.url + "/v1/status", {}, PROBE_TIMEOUT_MS);
      n.fails = 0;
      n.backoff = BACKOFF_MIN_MS;
      onStatus(n, st, now());
      setUp(n, true);
      if (!n.es) openEvents(n);
      probeSoon(n, PROBE_EVERY_MS);
    } catch (_e) {
      n.fails += 1;
      if (n.fails >= 2 || !n.up) {
        setUp(n, false);
        closeEvents(n);
        n.backoff = Math.min(BACKOFF_MAX_MS, n.backoff * 2);
        probeSoon(n, n.backoff);
      } else {
        probeSoon(n, 250);
      }
    } finally {
      n.probing = false;
    }
  }

  function setUp(n, up) {
    if (n.up === up) return;
    n.up = up;
    record(n.id, up ? "up" : "down", {}, now());
  }

  function openEvents(n) {
    const es = new EventSource(n.url + "/v1/events?entries=0");
    n.es = es;
    const handler = (e) => {
      if (n.es !== es) return;
      let data;
      try { data = JSON.parse(e.data); } catch (_x) { return; }
      n.fails = 0;
      n.lastEventAt = now();
      if (e.type === "status") {
        onStatus(n, data, typeof data.t === "number" ? data.t : now());
        setUp(n, true);
        return;
      }
      const t = typeof data.t === "number" ? data.t : now();
      if (e.type === "Held") app.heldSeen.set(`${n.id}:${data.id}`, t);
      if (e.type === "Aggregate") n.lastAggregate = now();
      record(n.id, data.kind || e.type, data, t);
      if (e.type === "EntryCommitted" || e.type === "LogTruncated" || e.type === "EntriesAppended") wantLog(n);
    };
    for (const k of KINDS) es.addEventListener(k, handler);
    es.onerror = () => {
      if (n.es !== es) return;
      closeEvents(n);
      if (!n.halting) probeSoon(n, 0);
    };
  }

  function closeEvents(n) {
    if (n.es) { n.es.close(); n.es = null; }
  }

  function onStatus(n, st, t) {
    if (typeof st.id === "number" && st.id !== n.id) return; // a URL that is another node now
    n.status = st;
    record(n.id, "status", st, t);
    for (const v of [...(st.voters || []), ...(st.learners || [])]) if (!app.nodes.has(v)) addNode(v, null);
    for (const m of st.held || []) {
      const key = `${n.id}:${m.id}`;
      if (!app.heldSeen.has(key)) app.heldSeen.set(key, t);
    }
    const key = `${st.last_index}:${st.commit}:${st.term}:${gridColumns()}`;
    if (key !== n.logKey) wantLog(n);
  }

  /** Fetch the node's log tail soon: only if something changed, at most 4 times a second. */
  function wantLog(n) {
    n.wantLog = true;
    if (n.logInflight || n.logTimer || !n.url || !n.up) return;
    const gap = now() - (n.lastAggregate || 0) < 2 ? LOADED_LOG_GAP_MS : LOG_MIN_GAP_MS;
    const wait = Math.max(0, n.logLastAt + gap - Date.now());
    n.logTimer = setTimeout(() => { n.logTimer = null; fetchLog(n); }, wait);
  }

  async function fetchLog(n) {
    if (!n.wantLog || !n.up) return;
    n.wantLog = false;
    n.logInflight = true;
    n.logLastAt = Date.now();
    const limit = Math.min(1000, gridColumns() + 1);
    try {
      const log = await fetchJSON(`${n.url}/v1/debug/log?limit=${limit}`, {}, 3000);
      const st = n.status || {};
      n.logKey = `${log.last_index}:${log.commit}:${st.term}:${gridColumns()}`;
      record(n.id, "log", log, now());
      if (st.last_index !== log.last_index || st.commit > log.commit) n.wantLog = true;
    } catch (_e) {
      n.wantLog = true; // try again, after a longer gap
      n.logLastAt = Date.now() + 2000;
    } finally {
      n.logInflight = false;
      if (n.wantLog && n.up) wantLog(n);
    }
  }

  // -- the supervisor --------------------------------------------------------------------

  async function ctl(method, path, body) {
    return fetchJSON(app.control.url + path, {
      method,
      headers: { Authorization: `Bearer ${app.control.token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }, 15000);
  }

  async function pollControl() {
    if (!app.control) return;
    try {
      const c = await ctl("GET", "/control/v1/cluster");
      const before = app.cluster;
      app.cluster = c;
      for (const node of c.nodes || []) {
        addNode(node.id, node.url);
        const n = app.nodes.get(node.id);
        const down = !node.running || node.paused;
        if (down) { setUp(n, false); closeEvents(n); }
        const was = before && before.nodes.find((x) => x.id === node.id);
        const woke = n.halting && !n.acting;
        if (!down && ((was && (!was.running || was.paused)) || woke)) {
          n.halting = false;
          n.backoff = BACKOFF_MIN_MS;
          probeSoon(n, 0);
        }
      }
      showControl();
      $("control-kind").textContent = `(${c.kind})`;
    } catch (e) {
      setNote(`supervisor: ${e.message}`, true);
    }
  }

  function showControl() {
    $("control").hidden = false;
    $("layout").classList.remove("no-control");
  }

  function openFault(kind, nodes) {
    app.live.faults.push({ kind, nodes, start: now(), end: null });
  }

  function closeFaults(pred) {
    for (const f of app.live.faults) if (f.end === null && pred(f)) f.end = now();
  }

  async function nodeAction(id, action) {
    const n = app.nodes.get(id);
    // Stopping, killing or pausing a node: do not knock at its door until it is back.
    if (n && ["stop", "kill", "pause"].includes(action)) n.halting = true;
    if (n) n.acting = true;
    try {
      setNote(`${action} node ${id}…`);
      await ctl("POST", `/control/v1/nodes/${id}/${action}`);
      if (["stop", "kill", "pause", "isolate"].includes(action)) openFault(action, [id]);
      if (action === "start") closeFaults((f) => (f.kind === "stop" || f.kind === "kill") && f.nodes.includes(id));
      if (action === "resume") closeFaults((f) => f.kind === "pause" && f.nodes.includes(id));
      record(id, "fault", { action }, now());
      setNote(`${action} node ${id}: done`);
    } catch (e) {
      setNote(`${action} node ${id}: ${e.message}`, true);
      if (n) n.halting = false;
    }
    if (n) n.acting = false;
    await pollControl();
    if (n && (action === "start" || action === "resume")) { n.halting = false; n.backoff = BACKOFF_MIN_MS; probeSoon(n, 0); }
  }

  async function cutLink(a, b) {
    if (a === b) { setNote("pick two different nodes to cut", true); return; }
    try {
      await ctl("POST", "/control/v1/cut", { a, b });
      openFault("cut", [a, b]);
      setNote(`cut ${a}–${b}`);
    } catch (e) { setNote(`cut: ${e.message}`, true); }
    await pollControl();
  }

  async function heal() {
    try {
      await ctl("POST", "/control/v1/heal");
      closeFaults((f) => f.kind === "cut" || f.kind === "isolate");
      setNote("healed");
    } catch (e) { setNote(`heal: ${e.message}`, true); }
    await pollControl();
  }

  function clockMode() {
    if (app.cluster && app.cluster.clock) return app.cluster.clock;
    for (const n of app.nodes.values()) if (n.up && n.status && n.status.clock === "step") return "step";
    return "real";
  }

  async function setClock(mode) {
    if (!app.control) { setNote("step mode needs the supervisor (open the page with raftlog cluster --open)", true); return; }
    try {
      await ctl("POST", "/control/v1/clock", { mode });
      if (mode === "step") openFault("step", [...app.nodes.keys()]);
      else closeFaults((f) => f.kind === "step");
      setNote(mode === "step" ? "step mode: time moves when you tick" : "real time");
    } catch (e) { setNote(`clock: ${e.message}`, true); }
    await pollControl();
    for (const n of app.nodes.values()) if (n.up) probeSoon(n, 0);
  }

  async function tick(id, ticks) {
    if (id === null || id === undefined) return;
    try {
      await ctl("POST", "/control/v1/tick", { node: id, ticks: ticks || 1 });
      setNote(`ticked node ${id}${ticks > 1 ? ` ×${ticks}` : ""}`);
    } catch (e) { setNote(`tick: ${e.message}`, true); }
    const n = app.nodes.get(id);
    if (n && n.up) probeSoon(n, 0);
  }

  async function heldAction(node, id, action) {
    const key = `${node}:${id}`;
    if (app.released.has(key)) return;
    app.released.add(key); // gone from the list at once, not when the node says so
    try {
      await ctl("POST", `/control/v1/${action}`, { node, id });
      setNote(`${action === "deliver" ? "delivered" : "dropped"} message ${id} to node ${node}`);
    } catch (e) {
      app.released.delete(key);
      setNote(`${action}: ${e.message}`, true);
    }
    for (const n of app.nodes.values()) if (n.up) probeSoon(n, 0);
  }

  /** The oldest held message: the first one listed (what the person sees first). */
  function oldestHeld() {
    const first = document.querySelector("#held [data-held]");
    if (!first) return null;
    return { node: Number(first.dataset.node), id: Number(first.dataset.held) };
  }

  // -- client actions --------------------------------------------------------------------

  function leaderNode() {
    let best = null;
    for (const n of app.nodes.values()) {
      if (n.up && n.status && n.status.state === "Leader" && (!best || n.status.term > best.status.term)) best = n;
    }
    return best;
  }

  function someLiveNode() {
    const leader = leaderNode();
    if (leader) return leader;
    for (const n of app.nodes.values()) if (n.up && n.url) return n;
    return null;
  }

  async function append(text) {
    const n = someLiveNode();
    if (!n) { setNote("no node is reachable", true); return; }
    const op = { t: now(), kind: "append", node: n.id, data: text, ok: false };
    app.live.ops.push(op);
    setNote(`appending through node ${n.id}…`);
    try {
      const ans = await fetchJSON(n.url + "/v1/log", {
        method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ data: text }),
      }, 15000);
      op.ok = true;
      op.index = ans.index;
      op.term = ans.term;
      op.done = now();
      setNote(`appended at index ${ans.index} (term ${ans.term})`);
    } catch (e) {
      op.error = e.message;
      op.done = now();
      setNote(`append failed: ${e.message}`, true);
    }
  }

  async function transfer(to) {
    const n = leaderNode() || someLiveNode();
    if (!n) { setNote("no node is reachable", true); return; }
    app.live.ops.push({ t: now(), kind: "transfer", node: n.id, data: String(to), ok: true });
    try {
      await fetchJSON(n.url + "/v1/leader/transfer", {
        method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ to }),
      }, 15000);
      setNote(`leadership transfer to node ${to} asked`);
    } catch (e) {
      setNote(`transfer failed: ${e.message}`, true);
    }
  }

  // -- the view at time T ------------------------------------------------------------------

  function viewTime() {
    if (app.playFrom) {
      const t = app.playFrom.start + (now() - app.playFrom.wall);
      if (t < app.rec.tEnd) return t;
      app.playFrom = null;
      app.cursor = app.rec.tEnd;
      setMode();
    }
    if (app.cursor !== null) return app.cursor;
    return app.replay ? app.rec.tEnd : now();
  }

  function nodeIds(rec) {
    const ids = new Set(rec.byNode.keys());
    if (!app.replay) for (const id of app.nodes.keys()) ids.add(id);
    return [...ids].sort((a, b) => a - b);
  }

  function nodeView(rec, id, T) {
    const idx = nodeIndex(rec, id);
    const st = lastAt(idx.status, T);
    const ud = lastAt(idx.updown, T);
    const up = !!st && (ud ? ud.up : true);
    const status = st ? st.s : null;
    const role = up && status ? String(status.state).toLowerCase() : "down";
    const logx = lastAt(idx.log, T);
    const clk = lastAt(idx.clock, T);
    const tr = lastAt(idx.trunc, T);
    // votes of the node's latest election
    let votes = [];
    for (let i = idx.votes.length - 1; i >= 0; i--) {
      const v = idx.votes[i];
      if (v.t > T) continue;
      if (v.reset) break;
      votes.push(v);
    }
    if (!(role === "candidate" || role === "precandidate")) {
      // keep the winning votes on screen a moment after the election
      const lastVote = votes.length ? votes[0].t : 0;
      if (!(role === "leader" && T - lastVote < 1.5)) votes = [];
    }
    let agg = null;
    for (let i = firstFrom(idx.agg, T - 1); i < idx.agg.length && idx.agg[i].t <= T; i++) {
      agg = agg || {};
      for (const [k, c] of Object.entries(idx.agg[i].counts)) agg[k] = (agg[k] || 0) + c;
    }
    let timer = null;
    if (up && clk && clk.timeout > 0 && role !== "leader") {
      const stepping = clk.clock === "step";
      const gone = stepping || !clk.tick_s ? 0 : (T - clk.t) / clk.tick_s;
      const left = Math.max(0, clk.timeout - clk.elapsed - gone);
      timer = { left, timeout: clk.timeout, step: stepping, seconds: left * (clk.tick_s || 0) };
    }
    // whom this node voted for in its current term, shown while the election is young
    const g = lastAt(idx.granted, T);
    const votedFor = g && status && g.term === status.term && T - g.t < 3 && g.candidate !== id ? g.candidate : null;
    return {
      id, up, role, status, term: status ? status.term : 0, log: logx ? logx.log : null, votedFor,
      truncation: tr && T - tr.t < TRUNCATION_SHOWN_S ? tr : null, votes, agg, timer,
    };
  }

  function buildView(rec, T) {
    const ids = nodeIds(rec);
    const nodes = ids.map((id) => nodeView(rec, id, T));
    let leader = null;
    for (const v of nodes) if (v.role === "leader" && (!leader || v.term > leader.term)) leader = v;
    return { T, ids, nodes, leader, byId: new Map(nodes.map((v) => [v.id, v])) };
  }

  // -- the ring ----------------------------------------------------------------------------

  const ring = { groups: new Map(), pos: new Map(), chords: new Map(), dots: new Map(), layer: {} };

  function layoutRing(ids) {
    const key = ids.join(",");
    if (key === app.layoutKey) return;
    app.layoutKey = key;
    const svg = $("ring");
    svg.textContent = "";
    ring.layer = {};
    ring.groups.clear(); ring.pos.clear(); ring.chords.clear(); ring.dots.clear();
    const cx = 200, cy = 162, R = ids.length <= 2 ? 90 : 112;
    ids.forEach((id, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
      ring.pos.set(id, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) });
    });
    ring.layer.chords = svg.appendChild(s("g", { class: "chords" }));
    ring.layer.nodes = svg.appendChild(s("g", { class: "nodes" }));
    ring.layer.msgs = svg.appendChild(s("g", { class: "msgs" }));
    ring.layer.labels = svg.appendChild(s("g", { class: "labels" }));
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const a = ring.pos.get(ids[i]), b = ring.pos.get(ids[j]);
        const line = s("line", { class: "chord", x1: a.x, y1: a.y, x2: b.x, y2: b.y });
        ring.layer.chords.appendChild(line);
        ring.chords.set(`${ids[i]}-${ids[j]}`, line);
      }
    }
    for (const id of ids) {
      const p = ring.pos.get(id);
      const g = s("g", { class: "node-group", "data-node": id, "data-role": "down", "data-term": 0, transform: `translate(${p.x},${p.y})` });
      g.appendChild(s("circle", { class: "halo", r: 43 }));
      g.appendChild(s("circle", { class: "timer-bg", r: 36 }));
      const timer = g.appendChild(s("circle", { class: "timer", r: 36, transform: "rotate(-90)" }));
      const body = g.appendChild(s("circle", { class: "body", r: 29 }));
      const label = g.appendChild(s("text", { class: "id" }));
      label.textContent = String(id);
      const badge = g.appendChild(s("g", { class: "badge", transform: "translate(27,-27)" }));
      const brect = badge.appendChild(s("rect", { x: -13, y: -8, width: 26, height: 16, rx: 8 }));
      const btext = badge.appendChild(s("text", {}));
      const votes = g.appendChild(s("g", { class: "votes" }));
      const sub = g.appendChild(s("text", { class: "sub", y: 52 }));
      const load = g.appendChild(s("text", { class: "load", y: 64 }));
      const title = g.appendChild(s("title", {}));
      g.addEventListener("click", () => { app.selected = id; showNodeDetails(id); });
      ring.layer.nodes.appendChild(g);
      ring.groups.set(id, { g, timer, body, badge, brect, btext, votes, sub, load, title, votesKey: "" });
    }
  }

  const BADGES = {
    leader: ["L", "#f1c40f", "#1d2330"], follower: ["F", "#ffffff", "#1d2330"],
    candidate: ["C", "#e67e22", "#ffffff"], precandidate: ["P", "#f5cba7", "#1d2330"],
    down: ["✕", "#a3a9b3", "#ffffff"],
  };

  function drawRing(view) {
    layoutRing(view.ids);
    const C = 2 * Math.PI * 36;
    for (const v of view.nodes) {
      const r = ring.groups.get(v.id);
      if (!r) continue;
      r.g.setAttribute("data-role", v.role);
      r.g.setAttribute("data-term", String(v.term));
      r.g.classList.toggle("selected", app.selected === v.id);
      r.body.setAttribute("fill", termColour(v.term));
      const [letter, bg, fg] = BADGES[v.role] || ["?", "#fff", "#000"];
      r.btext.textContent = letter;
      r.brect.setAttribute("fill", bg);
      r.btext.setAttribute("fill", fg);
      if (v.timer) {
        const frac = v.timer.timeout ? v.timer.left / v.timer.timeout : 0;
        r.timer.setAttribute("stroke-dasharray", `${(frac * C).toFixed(1)} ${C.toFixed(1)}`);
      }
      r.timer.style.display = v.timer ? "" : "none";
      let sub = v.status ? `term ${v.term}` : "unknown";
      if (v.role === "down") sub = v.status ? `down (term ${v.term})` : "unreachable";
      else if (v.timer) sub += v.timer.step ? ` · ${Math.ceil(v.timer.left)} ticks` : ` · ${Math.round(v.timer.seconds * 1000)} ms`;
      else if (v.role === "leader" && v.status) sub += ` · commit ${v.status.commit}`;
      if (v.votedFor !== null && v.role !== "down") sub += ` · voted ${v.votedFor}`;
      r.sub.textContent = sub;
      r.title.textContent = `node ${v.id}: ${v.role}, term ${v.term}` + (v.status ? `, commit ${v.status.commit}, last ${v.status.last_index}` : "");
      // vote dots: one at the node's edge toward each voter
      const vk = v.votes.map((x) => `${x.voter}${x.granted ? "+" : "-"}`).join(",");
      if (vk !== r.votesKey) {
        r.votesKey = vk;
        r.votes.textContent = "";
        const me = ring.pos.get(v.id);
        for (const x of v.votes) {
          const p = ring.pos.get(x.voter);
          if (!p) continue;
          const a = Math.atan2(p.y - me.y, p.x - me.x);
          r.votes.appendChild(s("circle", {
            class: `vote ${x.granted ? "granted" : "refused"}`, r: 5,
            cx: (42 * Math.cos(a)).toFixed(1), cy: (42 * Math.sin(a)).toFixed(1),
          }));
        }
      }
      let load = "";
      if (v.agg) {
        const parts = Object.entries(v.agg).sort((a, b) => b[1] - a[1]).slice(0, 2);
        load = "+" + parts.map(([k, c]) => `${c} ${k.replace(/^Message:/, "")}`).join(", ") + " /s";
      }
      r.load.textContent = load;
    }
    drawChords(view);
    drawMessages(view);
  }

  function drawChords(view) {
    const cuts = new Set();
    const isolated = new Set();
    if (app.cluster && !app.replay) {
      for (const [a, b] of app.cluster.cuts || []) cuts.add(`${Math.min(a, b)}-${Math.max(a, b)}`);
      for (const n of app.cluster.nodes || []) if (n.isolated) isolated.add(n.id);
    }
    for (const [key, line] of ring.chords) {
      const [a, b] = key.split("-").map(Number);
      line.classList.toggle("cut", cuts.has(key) || isolated.has(a) || isolated.has(b));
    }
    void view;
  }

  function drawMessages(view) {
    const rec = app.rec;
    const T = view.T;
    const msgs = rec.messages;
    const wanted = [];
    let hidden = 0;
    const counts = {};
    for (let i = firstFrom(msgs, T - 1); i < msgs.length && msgs[i].t <= T; i++) {
      const m = msgs[i];
      const type = m.data.type;
      counts[type] = (counts[type] || 0) + 1;
      if (m.t < T - DOT_S) continue;
      if (!app.showHeartbeats && (type === "heartbeat" || type === "heartbeat_resp")) { hidden++; continue; }
      wanted.push(m);
    }
    const extra = Math.max(0, wanted.length - MAX_DOTS);
    const shown = wanted.slice(extra);
    const keep = new Set(shown);
    for (const [m, el] of ring.dots) if (!keep.has(m)) { el.remove(); ring.dots.delete(m); }
    for (const m of shown) {
      const a = ring.pos.get(m.data.src), b = ring.pos.get(m.data.dst);
      if (!a || !b) continue;
      let el = ring.dots.get(m);
      if (!el) {
        const resp = /_resp$/.test(m.data.type);
        const big = m.data.type === "append" && m.data.fields && m.data.fields.entries > 0;
        el = s("circle", { class: "msg-dot" + (resp ? " resp" : ""), r: big ? 7 : 5, fill: msgColour(m.data.type) });
        el.addEventListener("click", (e) => { e.stopPropagation(); showMessage(m); });
        ring.layer.msgs.appendChild(el);
        ring.dots.set(m, el);
      }
      const f = Math.min(1, Math.max(0, (T - m.t) / DOT_S));
      // each direction on its own side of the chord, so requests and answers do not overlap
      const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      const ox = (-(b.y - a.y) / len) * 4, oy = ((b.x - a.x) / len) * 4;
      el.setAttribute("cx", (a.x + (b.x - a.x) * f + ox).toFixed(1));
      el.setAttribute("cy", (a.y + (b.y - a.y) * f + oy).toFixed(1));
      el.classList.toggle("chosen", app.chosenMsg === m);
    }
    drawHeldDots(view);
    // legend: what moved in the last second (dots and counted)
    const legend = $("msg-legend");
    const aggTotal = view.nodes.reduce((sum, v) => sum + (v.agg ? Object.values(v.agg).reduce((x, y) => x + y, 0) : 0), 0);
    // a request and its answer on one entry: "append 12+11/s"
    const pairs = {};
    for (const [k, c] of Object.entries(counts)) {
      const base = k.replace(/_resp$/, "");
      pairs[base] = pairs[base] || [0, 0];
      pairs[base][k === base ? 0 : 1] += c;
    }
    const parts = Object.entries(pairs).sort().map(([k, [q, r]]) =>
      `<span><i style="background:${msgColour(k)}"></i>${k} ${q}${r ? "+" + r : ""}/s${!app.showHeartbeats && k === "heartbeat" ? " (hidden: h)" : ""}</span>`);
    void hidden;
    if (extra) parts.push(`<span>+${extra} not drawn</span>`);
    if (aggTotal) parts.push(`<span>under load: ${aggTotal} events/s counted</span>`);
    const html = parts.join("");
    if (legend.innerHTML !== html) legend.innerHTML = html;
  }

  function drawHeldDots(view) {
    let layer = ring.layer.held;
    if (!layer) layer = ring.layer.held = ring.layer.msgs.parentNode.insertBefore(s("g", { class: "held-dots" }), ring.layer.labels);
    const items = [];
    for (const v of view.nodes) if (v.up && v.status) for (const m of v.status.held || []) items.push({ ...m, dst: m.dst || v.id });
    const key = items.map((m) => `${m.dst}:${m.id}`).join(",");
    if (layer.dataset.key === key) return;
    layer.dataset.key = key;
    layer.textContent = "";
    const stack = new Map();
    for (const m of items) {
      const a = ring.pos.get(m.src), b = ring.pos.get(m.dst);
      if (!a || !b) continue;
      const k = `${m.src}-${m.dst}`;
      const nth = stack.get(k) || 0;
      stack.set(k, nth + 1);
      const f = Math.max(0.35, 0.72 - nth * 0.07);
      const c = s("circle", { class: "msg-dot held-dot", r: 5, fill: msgColour(m.type), cx: a.x + (b.x - a.x) * f, cy: a.y + (b.y - a.y) * f });
      c.appendChild(s("title", {})).textContent = `held: ${m.type} ${m.src}→${m.dst} (message ${m.id})`;
      c.addEventListener("click", () => showMessage({ t: null, node: m.src, data: m }));
      layer.appendChild(c);
    }
  }

  // -- details -----------------------------------------------------------------------------

  function showMessage(m) {
    app.chosenMsg = m;
    const d = m.data;
    const box = $("details");
    box.textContent = "";
    box.append(
      h("div", { class: "row title" }, `${d.type} ${d.src} → ${d.dst}, term ${d.term}`),
      h("div", { class: "note" }, m.t ? `sent ${fmtTime(m.t)}` : "held in step mode"),
      h("pre", {}, JSON.stringify(d.fields || d, null, 1)),
    );
  }

  function showNodeDetails(id) {
    const v = buildView(app.rec, viewTime()).byId.get(id);
    const box = $("details");
    box.textContent = "";
    const st = v && v.status;
    box.append(
      h("div", { class: "row title" }, `node ${id}: ${v ? v.role : "?"}`),
      h("pre", {}, st ? JSON.stringify({
        term: st.term, leader: st.leader, vote: st.vote, commit: st.commit, last_index: st.last_index,
        last_term: st.last_term, clock: st.clock, election: `${st.election_elapsed}/${st.election_timeout} ticks`,
        client_url: st.client_url,
      }, null, 1) : "no status yet"),
    );
  }

  function showCell(id, e) {
    const box = $("details");
    box.textContent = "";
    box.append(
      h("div", { class: "row title" }, `node ${id}, index ${e.index}, term ${e.term}`),
      h("pre", {}, `kind: ${e.kind}\npreview: ${e.preview}`),
    );
  }

  // -- the log grid ----------------------------------------------------------------------

  function gridColumns() {
    const w = $("grid-panel").clientWidth || 600;
    const cell = 23;
    return Math.max(8, Math.min(80, Math.floor((w - 90) / cell)));
  }

  function drawGrid(view) {
    const W = gridColumns();
    let end = 0;
    for (const v of view.nodes) {
      if (v.log) end = Math.max(end, v.log.last_index);
      else if (v.status) end = Math.max(end, v.status.last_index);
    }
    end += 1; // room for a caught-up follower's next marker
    const start = Math.max(1, end - W + 1);
    const leader = view.leader;
    const peers = new Map();
    if (leader && leader.status) for (const p of leader.status.peers || []) peers.set(p.id, p);
    const key = JSON.stringify([start, end, view.nodes.map((v) => [v.id, v.up, v.log && v.log.last_index, v.log && v.log.commit, v.status && v.status.commit, v.truncation && v.truncation.t, v.log && v.log.entries.length && v.log.entries[v.log.entries.length - 1].term]), [...peers.values()].map((p) => [p.id, p.match, p.next])]);
    if (key === app.gridKey) return;
    app.gridKey = key;
    const grid = $("grid");
    grid.textContent = "";
    const head = h("div", { class: "grid-row grid-head" }, h("div", { class: "rowhead" }, "index"));
    const hc = head.appendChild(h("div", { class: "cells" }));
    for (let i = start; i <= end; i++) hc.append(h("span", {}, i % 5 === 0 || i === start ? i : ""));
    grid.append(head);
    for (const v of view.nodes) {
      const commit = Math.max(v.log ? v.log.commit : 0, v.status ? v.status.commit : 0);
      const entries = new Map();
      if (v.log) for (const e of v.log.entries) entries.set(e.index, e);
      const tr = v.truncation;
      const p = peers.get(v.id);
      let headText = `node ${v.id}`;
      if (v.role === "leader") headText += " ★";
      const row = h("div", { class: "grid-row" + (v.up ? "" : " down"), "data-node": v.id }, h("div", { class: "rowhead", title: tr ? `log truncated from ${tr.from} (was up to ${tr.old})` : "" }, headText, tr ? " ✂" : ""));
      const cells = row.appendChild(h("div", { class: "cells" }));
      for (let i = start; i <= end; i++) {
        const e = entries.get(i);
        let cls = "cell";
        if (p && p.match === i) cls += " match";
        if (p && p.next === i) cls += " next";
        if (tr && i >= tr.from && i <= tr.old) cls += " truncated";
        if (tr && i === tr.from) cls += " cut-here";
        if (!e) {
          cells.append(h("div", { class: cls + " empty", title: p && p.next === i ? `next index for node ${v.id}` : null }));
          continue;
        }
        const committed = i <= commit;
        const c = h("div", {
          class: cls, "data-node": v.id, "data-index": i, "data-term": e.term, "data-committed": committed ? "true" : "false",
          style: `background-color:${termColour(e.term)}`,
          title: `#${i} term ${e.term} ${committed ? "committed" : "not committed"}${e.preview ? ": " + e.preview : ""}`,
        }, e.term);
        c.addEventListener("click", () => showCell(v.id, e));
        cells.append(c);
      }
      grid.append(row);
    }
    grid.append(h("div", { class: "grid-legend" }, "cell: term · dashed: not committed · ▾ next · underline: match (leader's view) · hatched: replaced by a truncation"));
  }

  // -- health --------------------------------------------------------------------------

  function drawHealth(view) {
    const leader = view.leader;
    const st = leader ? leader.status : (view.nodes.find((v) => v.status) || {}).status;
    const voters = st ? (st.voters || []).length : view.nodes.length;
    const quorum = Math.floor(voters / 2) + 1;
    const tolerated = voters - quorum;
    const upVoters = view.nodes.filter((v) => v.up && (!st || (st.voters || []).includes(v.id))).length;
    const lc = leader && leader.status ? leader.status.commit : null;
    const ll = leader && leader.status ? leader.status.last_index : null;
    const rows = view.nodes.map((v) => {
      const s2 = v.status;
      const behindC = lc !== null && s2 && v.up ? lc - s2.commit : null;
      const behindL = ll !== null && s2 && v.up ? ll - s2.last_index : null;
      return [v.id, v.role, v.term, s2 ? s2.commit : "", s2 ? s2.last_index : "", behindC, behindL];
    });
    const key = JSON.stringify([leader && leader.id, leader && leader.term, voters, upVoters, rows]);
    if (key === app.healthKey) return;
    app.healthKey = key;
    const box = $("health");
    box.textContent = "";
    box.append(h("div", { class: "facts" },
      h("span", {}, "leader ", h("b", { id: "health-leader" }, leader ? `${leader.id} (term ${leader.term})` : "none")),
      h("span", {}, "quorum ", h("b", {}, `${quorum} of ${voters}`)),
      h("span", {}, "tolerates ", h("b", {}, `${tolerated} failure${tolerated === 1 ? "" : "s"}`)),
      h("span", { class: upVoters < quorum ? "lag" : "" }, "reachable ", h("b", {}, `${upVoters}/${voters}`)),
    ));
    const table = h("table", {}, h("tr", {}, ...["node", "role", "term", "commit", "last", "trails commit", "trails last"].map((x) => h("th", {}, x))));
    for (const r of rows) {
      table.append(h("tr", {}, ...r.map((x, i) => h("td", { class: i >= 5 && x > 0 ? "lag" : "" }, x === null ? "–" : x))));
    }
    box.append(table);
  }

  // -- controls: supervisor and step mode ------------------------------------------------

  function drawControl() {
    if (!app.control || !app.cluster) return;
    const c = app.cluster;
    const key = JSON.stringify(c);
    if (key === app.controlKey) return;
    app.controlKey = key;
    const box = $("control-nodes");
    box.textContent = "";
    for (const n of c.nodes) {
      const state = !n.running ? "stopped" : n.paused ? "paused" : n.isolated ? "isolated" : "running";
      box.append(h("div", { class: "ctl-node", "data-control-node": n.id },
        h("span", { class: "who" }, `node ${n.id} `, h("span", { class: "state-tag" }, state)),
        n.running
          ? h("button", { "data-action": "stop", onclick: () => nodeAction(n.id, "stop") }, "stop")
          : h("button", { "data-action": "start", onclick: () => nodeAction(n.id, "start") }, "start"),
        h("button", { "data-action": "kill", disabled: !n.running, onclick: () => nodeAction(n.id, "kill") }, "kill"),
        n.paused
          ? h("button", { "data-action": "resume", onclick: () => nodeAction(n.id, "resume") }, "resume")
          : h("button", { "data-action": "pause", disabled: !n.running, onclick: () => nodeAction(n.id, "pause") }, "pause"),
        h("button", { "data-action": "isolate", disabled: n.isolated, onclick: () => nodeAction(n.id, "isolate") }, "isolate"),
      ));
    }
    const ids = c.nodes.map((n) => n.id);
    for (const [sel, pick] of [["cut-a", 0], ["cut-b", 1]]) {
      const el = $(sel);
      const cur = el.value;
      el.textContent = "";
      for (const id of ids) el.append(h("option", { value: id }, id));
      el.value = cur || String(ids[Math.min(pick, ids.length - 1)]);
    }
    $("btn-step").textContent = c.clock === "step" ? "real time" : "step mode";
  }

  function drawStep(view) {
    const step = clockMode() === "step" && !app.replay;
    $("step").hidden = !step;
    $("tick-node").textContent = app.selected === null ? "?" : String(app.selected);
    if (!step) { app.heldKey = ""; return; }
    const items = heldList(view).map(({ node, m }) => [node, m.id]);
    const sel = view.byId.get(app.selected);
    const key = JSON.stringify([items, app.selected, sel && sel.timer && Math.ceil(sel.timer.left)]);
    if (key === app.heldKey) return;
    app.heldKey = key;
    const box = $("held");
    box.textContent = "";
    if (sel && sel.up) {
      // Ticks to the selected node's election timeout (a leader: its next heartbeat).
      const left = sel.timer ? Math.max(1, Math.ceil(sel.timer.left)) : 1;
      const what = sel.timer ? `${left} tick${left === 1 ? "" : "s"} to its election timeout` : "no election timer running";
      box.append(h("div", { class: "row" }, `node ${sel.id}: ${what} `,
        h("button", { id: "btn-tick-timeout", "data-node": sel.id, onclick: () => tick(sel.id, left) }, `tick ×${left}`)));
    }
    // One list, oldest first (what "d" delivers is the first).
    const all = heldList(view);
    if (!all.length) box.append(h("div", { class: "note" }, "no message is held: tick a node"));
    for (const { node, m } of all) {
      box.append(h("div", { class: "held-msg", "data-held": m.id, "data-node": node, title: JSON.stringify(m.fields || {}) },
        h("span", { style: `color:${msgColour(m.type)}` }, "●"), ` ${m.type} ${m.src} → ${node} (term ${m.term}) `,
        h("button", { "data-action": "deliver", onclick: () => heldAction(node, m.id, "deliver") }, "deliver"),
        h("button", { "data-action": "drop", onclick: () => heldAction(node, m.id, "drop") }, "drop"),
      ));
    }
  }

  /** Every held message of the view, oldest first: [{node (its receiver), m, seen}]. */
  function heldList(view) {
    const all = [];
    for (const v of view.nodes) {
      if (!v.up || !v.status) continue;
      for (const m of v.status.held || []) {
        const key = `${v.id}:${m.id}`;
        if (!app.released.has(key)) all.push({ node: v.id, m, seen: app.heldSeen.get(key) || 0 });
      }
    }
    all.sort((a, b) => a.seen - b.seen || a.node - b.node || a.m.id - b.m.id);
    return all;
  }

  function drawTransferOptions(view) {
    const el = $("transfer-to");
    const ids = view.ids.join(",");
    if (el.dataset.ids === ids) return;
    el.dataset.ids = ids;
    const cur = el.value;
    el.textContent = "";
    for (const id of view.ids) el.append(h("option", { value: id }, `node ${id}`));
    if (cur) el.value = cur;
  }

  // -- timeline, pause, scrub, replay --------------------------------------------------------

  /** The recording in timeline.js's format: times in seconds from t0. */
  function timelineRecording(rec, tEnd) {
    const t0 = rec.t0;
    const rel = (t) => (t === null || t === undefined ? null : t - t0);
    return {
      version: 1, source: "dashboard", t0, duration: tEnd - t0,
      nodes: nodeIds(rec),
      spans: buildSpans(rec, tEnd).map((x) => ({ ...x, start: rel(x.start), end: rel(x.end) })),
      faults: rec.faults.map((f) => ({
        kind: f.kind, nodes: f.nodes, target: f.nodes.join("–"), start: rel(f.start), end: rel(f.end === null ? tEnd : f.end),
      })),
      ops: rec.ops.map((o) => ({
        process: "page", kind: o.kind, start: rel(o.t), end: rel(o.done), value: o.data,
        outcome: o.ok ? "ok" : o.done ? "fail" : "info",
      })),
      marks: rec.marks.map((m) => ({ ...m, t: rel(m.t) })),
    };
  }

  function drawTimeline(force) {
    const T = viewTime();
    const rec = app.rec;
    const tEnd = app.replay ? rec.tEnd : now();
    const span = Math.max(0.001, tEnd - rec.t0);
    const scrub = $("scrub");
    if (document.activeElement !== scrub || app.cursor === null) scrub.value = String(Math.round(((T - rec.t0) / span) * 1000));
    $("cursor-label").textContent = `${fmtTime(T)} (${(T - rec.t0).toFixed(1)} s)`;
    const ms = Date.now();
    const live = app.cursor === null && !app.playFrom;
    // Drawn again every 2 s while live; while paused or replaying only when asked (a seek
    // moves the cursor alone, so that a drag on the timeline keeps its pointer).
    if (force || (live && ms - app.timelineAt >= TIMELINE_MS)) {
      app.timelineAt = ms;
      const box = $("timeline");
      if (window.RaftTimeline && typeof window.RaftTimeline.render === "function") {
        app.timeline = window.RaftTimeline.render(box, timelineRecording(rec, tEnd), {
          cursor: live ? null : T - rec.t0,
          onScrub: (t) => seek(rec.t0 + t),
        });
        // On this page "[data-node][data-role]" means a node of the ring (docs/dashboard.md;
        // the tests and `raftlog bench --workloads dashboard` count them): the timeline's
        // spans keep their role as data-span-role.
        for (const r of box.querySelectorAll("[data-node][data-role]")) {
          r.setAttribute("data-span-role", r.getAttribute("data-role"));
          r.removeAttribute("data-role");
        }
      } else if (!box.dataset.missing) {
        box.dataset.missing = "1";
        box.append(h("div", { class: "note" }, "timeline.js is not loaded: the role timeline is not drawn (pause, scrub and replay still work)"));
      }
    } else if (app.timeline && !live) {
      app.timeline.setCursor(T - rec.t0);
    }
  }

  function setMode() {
    const mode = app.replay ? "replay" : app.cursor !== null ? "paused" : "live";
    const el = $("mode");
    el.dataset.mode = mode;
    el.textContent = mode === "replay" ? "replay" : mode === "paused" ? "paused" : "live";
    $("btn-pause").textContent = app.cursor !== null ? "resume" : "pause";
  }

  function pause() {
    app.dirty = true;
    if (app.cursor !== null) { resume(); return; }
    app.cursor = viewTime();
    app.playFrom = null;
    setMode();
    drawTimeline(true);
  }

  function resume() {
    app.dirty = true;
    // From a paused live view: back to live. From a replay: play on from the cursor.
    if (app.replay) {
      const start = app.cursor === null ? app.rec.t0 : app.cursor;
      const wall = now();
      app.cursor = null;
      app.playFrom = { start, wall };
    } else {
      app.cursor = null;
    }
    setMode();
    drawTimeline(true);
  }

  function goLive() {
    app.dirty = true;
    app.replay = false;
    app.rec = app.live;
    app.cursor = null;
    app.playFrom = null;
    app.layoutKey = null;
    app.gridKey = "";
    setMode();
    drawTimeline(true);
  }

  function seek(t) {
    app.dirty = true;
    const rec = app.rec;
    const tEnd = app.replay ? rec.tEnd : now();
    app.cursor = Math.min(tEnd, Math.max(rec.t0, t));
    app.playFrom = null;
    setMode();
    drawTimeline(!app.timeline);
  }

  function scrubBy(ds) {
    seek(viewTime() + ds);
  }

  function exportNow() {
    const data = JSON.stringify(exportRecording(app.live));
    const blob = new Blob([data], { type: "application/json" });
    const a = h("a", { href: URL.createObjectURL(blob), download: `raftlog-recording-${new Date().toISOString().replace(/[:.]/g, "-")}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
  }

  async function importFile(file) {
    try {
      const obj = JSON.parse(await file.text());
      app.rec = importRecording(obj);
      app.replay = true;
      app.cursor = app.rec.t0;
      app.layoutKey = null;
      app.gridKey = "";
      setMode();
      setNote(`replaying ${file.name}: space plays, arrows scrub, l goes back to live`);
      drawTimeline(true);
    } catch (e) {
      setNote(`import: ${e.message}`, true);
    }
  }

  // -- notes and the summary line ----------------------------------------------------------

  function setNote(text, bad) {
    const el = $("op-result");
    el.textContent = text;
    el.classList.toggle("bad", !!bad);
  }

  function setSummary(text) {
    const el = $("summary");
    if (el.textContent !== text) el.textContent = text;
  }

  // -- the frame -------------------------------------------------------------------------

  function frame() {
    requestAnimationFrame(frame);
    const ms = performance.now();
    if (ms - app.lastFrame < FRAME_MS) return;
    app.lastFrame = ms;
    const T = viewTime();
    const view = buildView(app.rec, T);
    drawRing(view); // moving dots and timers: every frame
    // The panels at most 5 times a second (at once after a seek or an action).
    if (!app.dirty && ms - app.lastPanels < PANELS_MS) return;
    app.dirty = false;
    app.lastPanels = ms;
    drawGrid(view);
    drawHealth(view);
    drawStep(view);
    drawControl();
    drawTransferOptions(view);
    // The timeline every 2 s, and at once when a role, a term or a fault changes.
    const tkey = view.nodes.map((v) => `${v.id}${v.role}${v.term}`).join() + `|${app.rec.faults.length}|${app.rec.faults.filter((f) => f.end === null).length}`;
    const live = app.cursor === null && !app.playFrom;
    drawTimeline(live && tkey !== app.timelineKey);
    app.timelineKey = tkey;
    if (!view.nodes.length && !app.replay) { setSummary(app.noCluster || "looking for the cluster…"); return; }
    const up = view.nodes.filter((v) => v.up).length;
    const what = app.replay ? "replay" : `${up}/${view.nodes.length} nodes up`;
    setSummary(`${what} · leader ${view.leader ? `${view.leader.id}, term ${view.leader.term}` : "none"} · ${clockMode()} clock`);
  }

  // -- wiring ----------------------------------------------------------------------------

  function bind() {
    $("append-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("append-data");
      const text = input.value;
      if (!text) return;
      input.value = "";
      append(text);
    });
    $("btn-transfer").addEventListener("click", () => transfer(Number($("transfer-to").value)));
    $("btn-pause").addEventListener("click", pause);
    $("btn-live").addEventListener("click", goLive);
    $("opt-heartbeats").addEventListener("change", (e) => { app.showHeartbeats = e.target.checked; });
    $("btn-export").addEventListener("click", exportNow);
    $("file-import").addEventListener("change", (e) => { if (e.target.files[0]) importFile(e.target.files[0]); e.target.value = ""; });
    $("btn-help").addEventListener("click", () => $("help").showModal());
    $("btn-heal").addEventListener("click", heal);
    $("btn-cut").addEventListener("click", () => cutLink(Number($("cut-a").value), Number($("cut-b").value)));
    $("btn-step").addEventListener("click", () => setClock(clockMode() === "step" ? "real" : "step"));
    $("btn-real").addEventListener("click", () => setClock("real"));
    $("btn-tick").addEventListener("click", () => tick(app.selected, 1));
    $("scrub").addEventListener("input", (e) => {
      const rec = app.rec;
      const tEnd = app.replay ? rec.tEnd : now();
      seek(rec.t0 + (Number(e.target.value) / 1000) * (tEnd - rec.t0));
    });
    document.addEventListener("keydown", onKey);
    document.addEventListener("click", () => { app.dirty = true; }, true);
    window.addEventListener("resize", () => { app.gridKey = ""; });
  }

  function onKey(e) {
    const tag = (e.target && e.target.tagName) || "";
    if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) && e.target.type !== "range" && e.target.type !== "checkbox") {
      if (e.key === "Escape") e.target.blur(); // back to the shortcuts
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    let done = true;
    if (k === " ") pause();
    else if (k === "ArrowLeft") scrubBy(e.shiftKey ? -5 : -0.5);
    else if (k === "ArrowRight") scrubBy(e.shiftKey ? 5 : 0.5);
    else if (k === "l") goLive();
    else if (k === "h") { app.showHeartbeats = !app.showHeartbeats; $("opt-heartbeats").checked = app.showHeartbeats; }
    else if (k === "a") $("append-data").focus();
    else if (k === "s") setClock(clockMode() === "step" ? "real" : "step");
    else if (k === "t") tick(app.selected, 1);
    else if (k === "d" || k === "x") {
      const o = oldestHeld();
      if (o) heldAction(o.node, o.id, k === "d" ? "deliver" : "drop");
      else setNote("no message is held");
    } else if (k === "?") { const d = $("help"); if (d.open) d.close(); else d.showModal(); }
    else if (/^[1-9]$/.test(k) && app.nodes.has(Number(k))) { app.selected = Number(k); showNodeDetails(app.selected); }
    else done = false;
    if (done) e.preventDefault();
  }

  function start() {
    app.control = readControlFragment();
    if (app.control) showControl();
    bind();
    setMode();
    discover();
    if (app.control) setInterval(pollControl, CONTROL_POLL_MS);
    requestAnimationFrame(frame);
  }

  // For tests and the curious: the recording and a few actions.
  window.raftlogDashboard = {
    exportRecording: () => exportRecording(app.live),
    importRecording: (obj) => { app.rec = importRecording(obj); app.replay = true; app.cursor = app.rec.t0; app.layoutKey = null; app.gridKey = ""; setMode(); },
    seek, goLive, pause,
    nodeUrl: (id) => (app.nodes.get(id) || {}).url || null,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
