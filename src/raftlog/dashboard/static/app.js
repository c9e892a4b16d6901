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
  // How often each part of the page is drawn (ms). Nothing is drawn when nothing changed;
  // a role, term, leader or up/down change draws every panel at once, whatever the rate.
  const RATES = {
    rest: { ring: 250, panels: 250, grid: 250, timeline: 5000 },
    // under load (Aggregate events, or the leader committing LOADED_RATE entries/s):
    // no moving dots, a count per link instead, and everything slower
    loaded: { ring: 400, panels: 800, grid: 1000, timeline: 10000 },
  };
  const MOVING_MS = 40; // 25 frames a second while message dots move (or a replay plays)
  const LOADED_RATE = 100; // entries/s committed: loaded (by hand nobody appends that fast)
  const UNLOADED_AFTER_S = 3; // back to the quiet view after this long below the rate
  const LOADED_LOG_GAP_MS = 1000; // under load, a log tail a second

  const KINDS = [
    "status", "Message", "Held", "Released", "Aggregate",
    "NodeStarted", "ElectionTimeout", "PreVoteStarted", "ElectionStarted",
    "VoteRequestReceived", "VoteGranted", "VoteRefused", "VoteReceived", "BecameLeader",
    // (not HeartbeatSent / HeartbeatReceived: 60 a second in a quiet 3-node cluster, shown
    // nowhere; a follower's election clock is in its status, ten times a second)
    "ElectionLost", "SteppedDown", "LeaderFound", "QuorumLost", "ProposalReceived", "EntriesAppended", "LogTruncated",
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
    due: { ring: 0, panels: 0, grid: 0, timeline: 0, label: 0 }, // when each part was last drawn (ms)
    loopTimer: null,
    loopFrame: null,
    urgent: true, // draw every panel at the next pass (a role/term/leader/up change, an action)
    dirty: true,
    loaded: false, // the live cluster is under load (the quiet streams, the slow rates)
    loadedUntil: 0,
    gridCols: 0, // columns of the log grid (read from the layout only on resize)
    timelineWidth: 0,
    stateKey: "",
    layoutKey: null,
    gridKey: "",
    healthKey: "",
    heldKey: "",
    controlKey: "",
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
    wake(true);
  }

  /** Under load or not: the live streams follow (without or with Message events). */
  function setLoaded(loaded) {
    if (loaded) app.loadedUntil = now() + UNLOADED_AFTER_S;
    if (app.loaded === loaded) return;
    app.loaded = loaded;
    for (const n of app.nodes.values()) {
      if (n.es && n.quiet !== loaded) { closeEvents(n); openEvents(n); }
    }
    wake(true);
  }

  function openEvents(n) {
    // Under load the page draws no message dots: it asks for no Message events either
    // (hundreds a second), and counts the traffic from the leader's status instead.
    n.quiet = app.loaded;
    const es = new EventSource(n.url + "/v1/events?entries=0" + (n.quiet ? "&messages=0" : ""));
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
      if (e.type === "Held") {
        const key = `${n.id}:${data.id}`; // the earliest we know of (a status may come first)
        app.heldSeen.set(key, Math.min(app.heldSeen.get(key) ?? t, t));
      }
      if (e.type === "Aggregate") { n.lastAggregate = now(); setLoaded(true); }
      record(n.id, data.kind || e.type, data, t);
      // a dot starts moving now, not at the next slow pass (none is drawn under load)
      if (e.type === "Message" && !app.loaded && (app.showHeartbeats || !/^heartbeat/.test(data.type))) { app.ringNow = true; wake(); }
      else if (e.type === "Held" || e.type === "Released" || e.type === "LogTruncated") wake(true);
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
    const was = n.status;
    // A new role, term or leader is shown by every panel at once, at the next frame.
    if (!was || was.state !== st.state || was.term !== st.term || was.leader !== st.leader) wake(true);
    // at rest, an append or a held message shows at once too (under load: at the pace)
    else if (!app.loaded && (was.commit !== st.commit || was.last_index !== st.last_index || was.clock !== st.clock
      || JSON.stringify(was.held || []) !== JSON.stringify(st.held || []))) wake(true);
    n.status = st;
    record(n.id, "status", st, t);
    for (const v of [...(st.voters || []), ...(st.learners || [])]) if (!app.nodes.has(v)) addNode(v, null);
    for (const m of st.held || []) {
      const key = `${n.id}:${m.id}`;
      if (!app.heldSeen.has(key)) app.heldSeen.set(key, t);
    }
    const key = `${st.last_index}:${st.commit}:${st.term}:${gridColumns()}`;
    if (key !== n.logKey) wantLog(n);
    // Loaded: the leader commits LOADED_RATE entries a second (measured over a second).
    if (st.state === "Leader") {
      const m = n.rateMark;
      if (!m || m.term !== st.term || st.commit < m.commit) n.rateMark = { t, commit: st.commit, term: st.term };
      else if (t - m.t >= 1) {
        if ((st.commit - m.commit) / (t - m.t) >= LOADED_RATE) setLoaded(true);
        n.rateMark = { t, commit: st.commit, term: st.term };
      }
    }
  }

  /** Fetch the node's log tail soon: only if something changed, at most 4 times a second. */
  function wantLog(n) {
    n.wantLog = true;
    if (n.logInflight || n.logTimer || !n.url || !n.up) return;
    const gap = app.loaded || now() - (n.lastAggregate || 0) < 2 ? LOADED_LOG_GAP_MS : LOG_MIN_GAP_MS;
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
      if (!app.loaded) wake(true);
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
      if (JSON.stringify(before) !== JSON.stringify(c)) wake(true);
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
    // A leader's pace over the last second: entries committed, and replicated per link.
    let rates = null;
    if (role === "leader") {
      const before = lastAt(idx.status, T - 1);
      if (before && before !== st && before.s.term === status.term && st.t - before.t > 0.3) {
        const dt = st.t - before.t;
        rates = { commit: Math.max(0, (status.commit - before.s.commit) / dt), peers: new Map() };
        const prev = new Map((before.s.peers || []).map((p) => [p.id, p.match]));
        for (const p of status.peers || []) {
          if (prev.has(p.id)) rates.peers.set(p.id, Math.max(0, (p.match - prev.get(p.id)) / dt));
        }
      }
    }
    return {
      id, up, role, status, term: status ? status.term : 0, log: logx ? logx.log : null, votedFor,
      truncation: tr && T - tr.t < TRUNCATION_SHOWN_S ? tr : null, votes, agg, timer, rates,
    };
  }

  function buildView(rec, T) {
    const ids = nodeIds(rec);
    const nodes = ids.map((id) => nodeView(rec, id, T));
    let leader = null;
    for (const v of nodes) if (v.role === "leader" && (!leader || v.term > leader.term)) leader = v;
    const live = rec === app.live && app.cursor === null && !app.playFrom;
    const loaded = live ? app.loaded
      : nodes.some((v) => v.agg || (v.rates && v.rates.commit >= LOADED_RATE));
    return { T, ids, nodes, leader, loaded, live, byId: new Map(nodes.map((v) => [v.id, v])) };
  }

  // -- drawing only what changed -------------------------------------------------------------

  /** Set an attribute, a text or a class only when it differs from what was set last. */
  function attr(el, k, v) {
    const c = el.__a || (el.__a = {});
    v = String(v);
    if (c[k] !== v) { c[k] = v; el.setAttribute(k, v); }
  }
  function unattr(el, k) {
    const c = el.__a || (el.__a = {});
    if (c[k] !== null) { c[k] = null; el.removeAttribute(k); }
  }
  function text(el, v) {
    v = String(v);
    if (el.__t !== v) { el.__t = v; el.textContent = v; }
  }
  function klass(el, v) {
    if (el.__k !== v) { el.__k = v; el.setAttribute("class", v); }
  }
  function styleProp(el, k, v) {
    const c = el.__s || (el.__s = {});
    if (c[k] !== v) { c[k] = v; el.style.setProperty(k, v); }
  }

  // -- the ring ----------------------------------------------------------------------------

  const ring = { groups: new Map(), pos: new Map(), chords: new Map(), links: new Map(), dots: new Map(), layer: {} };

  function layoutRing(ids) {
    const key = ids.join(",");
    if (key === app.layoutKey) return;
    app.layoutKey = key;
    const svg = $("ring");
    svg.textContent = "";
    ring.layer = {};
    ring.groups.clear(); ring.pos.clear(); ring.chords.clear(); ring.links.clear(); ring.dots.clear();
    const cx = 200, cy = 162, R = ids.length <= 2 ? 90 : 112;
    ids.forEach((id, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
      ring.pos.set(id, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) });
    });
    ring.layer.chords = svg.appendChild(s("g", { class: "chords" }));
    ring.layer.nodes = svg.appendChild(s("g", { class: "nodes" }));
    ring.layer.msgs = svg.appendChild(s("g", { class: "msgs" }));
    ring.layer.held = svg.appendChild(s("g", { class: "held-dots" }));
    ring.layer.labels = svg.appendChild(s("g", { class: "labels" }));
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const a = ring.pos.get(ids[i]), b = ring.pos.get(ids[j]);
        const line = s("line", { class: "chord", x1: a.x, y1: a.y, x2: b.x, y2: b.y });
        ring.layer.chords.appendChild(line);
        ring.chords.set(`${ids[i]}-${ids[j]}`, line);
        // under load: the entries a second replicated over the link, at its middle
        const label = s("text", { class: "link-rate", x: ((a.x + b.x) / 2).toFixed(1), y: ((a.y + b.y) / 2 - 4).toFixed(1) });
        ring.layer.labels.appendChild(label);
        ring.links.set(`${ids[i]}-${ids[j]}`, label);
      }
    }
    for (const id of ids) {
      const p = ring.pos.get(id);
      const g = s("g", { class: "node-group", "data-node": id, "data-role": "down", "data-term": 0, transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})` });
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

  function fmtRate(x) {
    return x >= 1000 ? `${(x / 1000).toFixed(1)}k` : String(Math.round(x));
  }

  function drawRing(view) {
    layoutRing(view.ids);
    const C = 2 * Math.PI * 36;
    for (const v of view.nodes) {
      const r = ring.groups.get(v.id);
      if (!r) continue;
      attr(r.g, "data-role", v.role);
      attr(r.g, "data-term", v.term);
      attr(r.g, "class", "node-group" + (app.selected === v.id ? " selected" : ""));
      attr(r.body, "fill", termColour(v.term));
      const [letter, bg, fg] = BADGES[v.role] || ["?", "#fff", "#000"];
      text(r.btext, letter);
      attr(r.brect, "fill", bg);
      attr(r.btext, "fill", fg);
      // the arc in whole pixels: a still timer (step mode, a steady follower) writes nothing
      if (v.timer) attr(r.timer, "stroke-dasharray", `${Math.round((v.timer.timeout ? v.timer.left / v.timer.timeout : 0) * C)} ${Math.ceil(C)}`);
      attr(r.timer, "visibility", v.timer ? "visible" : "hidden");
      let sub = v.status ? `term ${v.term}` : "unknown";
      if (v.role === "down") sub = v.status ? `down (term ${v.term})` : "unreachable";
      else if (v.timer) sub += v.timer.step ? ` · ${Math.ceil(v.timer.left)} ticks` : ` · ${Math.round(v.timer.seconds * 100) * 10} ms`;
      else if (v.role === "leader" && v.status) sub += ` · commit ${v.status.commit}`;
      if (v.votedFor !== null && v.role !== "down") sub += ` · voted ${v.votedFor}`;
      text(r.sub, sub);
      text(r.title, `node ${v.id}: ${v.role}, term ${v.term}` + (v.status ? `, commit ${v.status.commit}, last ${v.status.last_index}` : ""));
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
      } else if (view.loaded && v.rates) {
        load = `${fmtRate(v.rates.commit)} commits/s`;
      }
      text(r.load, load);
    }
    drawChords(view);
    drawMessages(view);
    drawHeldDots(view);
  }

  function drawChords(view) {
    const cuts = new Set();
    const isolated = new Set();
    if (app.cluster && !app.replay) {
      for (const [a, b] of app.cluster.cuts || []) cuts.add(`${Math.min(a, b)}-${Math.max(a, b)}`);
      for (const n of app.cluster.nodes || []) if (n.isolated) isolated.add(n.id);
    }
    const leader = view.leader;
    for (const [key, line] of ring.chords) {
      const [a, b] = key.split("-").map(Number);
      attr(line, "class", cuts.has(key) || isolated.has(a) || isolated.has(b) ? "chord cut" : "chord");
      // under load a count per link instead of the dots: the leader's entries/s to the peer
      let label = "";
      if (view.loaded && leader && leader.rates && (a === leader.id || b === leader.id)) {
        const r = leader.rates.peers.get(a === leader.id ? b : a);
        if (r !== undefined) label = `${fmtRate(r)}/s`;
      }
      text(ring.links.get(key), label);
    }
  }

  /** The message dots (none under load) and the legend. Returns whether a dot moves. */
  function drawMessages(view) {
    const rec = app.rec;
    const T = view.T;
    const msgs = rec.messages;
    const wanted = [];
    const counts = {};
    for (let i = firstFrom(msgs, T - 1); i < msgs.length && msgs[i].t <= T; i++) {
      const m = msgs[i];
      const type = m.data.type;
      counts[type] = (counts[type] || 0) + 1;
      // live under load: no dots (a paused or replayed moment still shows its share)
      if (m.t < T - DOT_S || (view.loaded && view.live)) continue;
      if (!app.showHeartbeats && (type === "heartbeat" || type === "heartbeat_resp")) continue;
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
        el.__base = "msg-dot" + (resp ? " resp" : "");
        el.addEventListener("click", (e) => { e.stopPropagation(); showMessage(m); });
        ring.layer.msgs.appendChild(el);
        ring.dots.set(m, el);
      }
      const f = Math.min(1, Math.max(0, (T - m.t) / DOT_S));
      // each direction on its own side of the chord, so requests and answers do not overlap
      const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      const ox = (-(b.y - a.y) / len) * 4, oy = ((b.x - a.x) / len) * 4;
      attr(el, "cx", (a.x + (b.x - a.x) * f + ox).toFixed(1));
      attr(el, "cy", (a.y + (b.y - a.y) * f + oy).toFixed(1));
      attr(el, "class", el.__base + (app.chosenMsg === m ? " chosen" : ""));
    }
    // legend: what moved in the last second (dots and counted)
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
    if (extra) parts.push(`<span>+${extra} not drawn</span>`);
    if (view.loaded) {
      const commit = view.leader && view.leader.rates ? view.leader.rates.commit : 0;
      parts.push(`<span>under load${commit ? `: ${fmtRate(commit)} entries/s committed` : ""}${aggTotal ? `, ${aggTotal} events/s counted` : ""}${view.live ? " · no dots, entries/s per link" : ""}</span>`);
    } else if (aggTotal) parts.push(`<span>under load: ${aggTotal} events/s counted</span>`);
    const html = parts.join("");
    // the counts a second: written once a second (what is listed: at once)
    const shape = html.replace(/\d+/g, "");
    const ms = performance.now();
    if (app.legendHtml !== html && (shape !== app.legendShape || ms - (app.legendAt || 0) >= 1000 || !view.live)) {
      app.legendHtml = html;
      app.legendShape = shape;
      app.legendAt = ms;
      $("msg-legend").innerHTML = html;
    }
    return ring.dots.size > 0;
  }

  function drawHeldDots(view) {
    const layer = ring.layer.held;
    const items = [];
    for (const v of view.nodes) if (v.up && v.status) for (const m of v.status.held || []) items.push({ ...m, dst: m.dst || v.id });
    const key = items.map((m) => `${m.dst}:${m.id}`).join(",");
    if (layer.__key === key) return;
    layer.__key = key;
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

  /** Columns that fit: read from the layout once, and again only after a resize. */
  function gridColumns() {
    if (!app.gridCols) {
      const w = $("grid-panel").clientWidth || 600;
      app.gridCols = Math.max(8, Math.min(80, Math.floor((w - 90) / 23)));
    }
    return app.gridCols;
  }

  const grid = { key: "", head: [], rows: new Map() };

  /** The grid's elements, made once per set of nodes and width and reused. */
  function layoutGrid(ids, W) {
    const key = `${ids.join(",")}/${W}`;
    if (grid.key === key) return;
    grid.key = key;
    grid.head = [];
    grid.rows.clear();
    const box = $("grid");
    box.textContent = "";
    const head = h("div", { class: "grid-row grid-head" }, h("div", { class: "rowhead" }, "index"));
    const hc = head.appendChild(h("div", { class: "cells" }));
    for (let k = 0; k < W; k++) grid.head.push(hc.appendChild(h("span", {})));
    box.append(head);
    for (const id of ids) {
      const rowhead = h("div", { class: "rowhead" });
      const row = h("div", { class: "grid-row", "data-node": id }, rowhead);
      const cellsBox = row.appendChild(h("div", { class: "cells" }));
      const cells = [];
      for (let k = 0; k < W; k++) cells.push(cellsBox.appendChild(h("div", { class: "cell empty" })));
      grid.rows.set(id, { row, rowhead, cells });
      box.append(row);
    }
    box.append(h("div", { class: "grid-legend" }, "cell: term · dashed: not committed · ▾ next · underline: match (leader's view) · hatched: replaced by a truncation"));
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
    const key = JSON.stringify([start, end, view.nodes.map((v) => [v.id, v.up, v.role, v.log && v.log.last_index, v.log && v.log.commit, v.status && v.status.commit, v.truncation && v.truncation.t, v.log && v.log.entries.length && v.log.entries[v.log.entries.length - 1].term]), [...peers.values()].map((p) => [p.id, p.match, p.next])]);
    if (key === app.gridKey) return;
    app.gridKey = key;
    layoutGrid(view.ids, W);
    grid.start = start;
    grid.entries = new Map();
    grid.head.forEach((el, k) => {
      const i = start + k;
      text(el, i <= end && (i % 5 === 0 || i === start) ? i : "");
      if (el.__hidden !== i > end) { el.__hidden = i > end; el.hidden = i > end; }
    });
    for (const v of view.nodes) {
      const g = grid.rows.get(v.id);
      if (!g) continue;
      const commit = Math.max(v.log ? v.log.commit : 0, v.status ? v.status.commit : 0);
      const entries = new Map();
      if (v.log) for (const e of v.log.entries) entries.set(e.index, e);
      grid.entries.set(v.id, entries);
      const tr = v.truncation;
      const p = peers.get(v.id);
      attr(g.row, "class", "grid-row" + (v.up ? "" : " down"));
      text(g.rowhead, `node ${v.id}${v.role === "leader" ? " ★" : ""}${tr ? " ✂" : ""}`);
      attr(g.rowhead, "title", tr ? `log truncated from ${tr.from} (was up to ${tr.old})` : "");
      g.cells.forEach((c, k) => {
        const i = start + k;
        const e = i <= end ? entries.get(i) : undefined;
        // past the end (a short log): not shown, so that the row is as long as the log
        if (i > end) { if (c.__hidden !== true) { c.__hidden = true; c.hidden = true; } } else if (c.__hidden !== false) { c.__hidden = false; c.hidden = false; }
        let cls = "cell";
        if (p && p.match === i) cls += " match";
        if (p && p.next === i) cls += " next";
        if (tr && i >= tr.from && i <= tr.old) cls += " truncated";
        if (tr && i === tr.from) cls += " cut-here";
        if (!e) {
          klass(c, cls + " empty");
          for (const k2 of ["data-node", "data-index", "data-term", "data-committed"]) unattr(c, k2);
          attr(c, "title", p && p.next === i ? `next index for node ${v.id}` : "");
          styleProp(c, "background-color", "");
          text(c, "");
          return;
        }
        const committed = i <= commit;
        klass(c, cls);
        attr(c, "data-node", v.id);
        attr(c, "data-index", i);
        attr(c, "data-term", e.term);
        attr(c, "data-committed", committed ? "true" : "false");
        attr(c, "title", `#${i} term ${e.term} ${committed ? "committed" : "not committed"}${e.preview ? ": " + e.preview : ""}`);
        styleProp(c, "background-color", termColour(e.term));
        text(c, e.term);
      });
    }
  }

  function onGridClick(ev) {
    const c = ev.target.closest && ev.target.closest(".cell[data-index]");
    if (!c || !grid.entries) return;
    const id = Number(c.dataset.node);
    const e = (grid.entries.get(id) || new Map()).get(Number(c.dataset.index));
    if (e) showCell(id, e);
  }

  // -- health --------------------------------------------------------------------------

  const health = { key: null, rows: new Map() };

  /** The health panel's elements, made once per set of nodes. */
  function layoutHealth(ids) {
    const key = ids.join(",");
    if (health.key === key) return;
    health.key = key;
    health.rows.clear();
    const box = $("health");
    box.textContent = "";
    health.leader = h("b", { id: "health-leader" });
    health.quorum = h("b", {});
    health.tolerates = h("b", {});
    health.reach = h("b", {});
    health.reachBox = h("span", {}, "reachable ", health.reach);
    box.append(h("div", { class: "facts" },
      h("span", {}, "leader ", health.leader),
      h("span", {}, "quorum ", health.quorum),
      h("span", {}, "tolerates ", health.tolerates),
      health.reachBox,
    ));
    const table = h("table", {}, h("tr", {}, ...["node", "role", "term", "commit", "last", "trails commit", "trails last"].map((x) => h("th", {}, x))));
    for (const id of ids) {
      const tds = [0, 1, 2, 3, 4, 5, 6].map(() => h("td", {}));
      const tr = h("tr", { "data-health-node": id }, ...tds);
      table.append(tr);
      health.rows.set(id, { tr, tds });
    }
    box.append(table);
  }

  function drawHealth(view) {
    const leader = view.leader;
    const st = leader ? leader.status : (view.nodes.find((v) => v.status) || {}).status;
    const voters = st ? (st.voters || []).length : view.nodes.length;
    const quorum = Math.floor(voters / 2) + 1;
    const tolerated = voters - quorum;
    const upVoters = view.nodes.filter((v) => v.up && (!st || (st.voters || []).includes(v.id))).length;
    const lc = leader && leader.status ? leader.status.commit : null;
    const ll = leader && leader.status ? leader.status.last_index : null;
    layoutHealth(view.ids);
    text(health.leader, leader ? `${leader.id} (term ${leader.term})` : "none");
    text(health.quorum, `${quorum} of ${voters}`);
    text(health.tolerates, `${tolerated} failure${tolerated === 1 ? "" : "s"}`);
    text(health.reach, `${upVoters}/${voters}`);
    attr(health.reachBox, "class", upVoters < quorum ? "lag" : "");
    for (const v of view.nodes) {
      const row = health.rows.get(v.id);
      if (!row) continue;
      const s2 = v.status;
      const behindC = lc !== null && s2 && v.up ? lc - s2.commit : null;
      const behindL = ll !== null && s2 && v.up ? ll - s2.last_index : null;
      // the test hooks: the table agrees with the ring (same role and term, same pass)
      attr(row.tr, "data-health-role", v.role);
      attr(row.tr, "data-health-term", v.term);
      [v.id, v.role, v.term, s2 ? s2.commit : "", s2 ? s2.last_index : "", behindC, behindL].forEach((x, i) => {
        text(row.tds[i], x === null ? "–" : x);
        if (i >= 5) attr(row.tds[i], "class", x > 0 ? "lag" : "");
      });
    }
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
    const at = String(Math.round(((T - rec.t0) / span) * 1000));
    if ((document.activeElement !== scrub || app.cursor === null) && scrub.__v !== at) { scrub.__v = at; scrub.value = at; }
    const live = app.cursor === null && !app.playFrom;
    // live: to the second (a label that changes 25 times a second costs a layout each)
    text($("cursor-label"), live ? `${fmtTime(T).slice(0, -4)} (${(T - rec.t0).toFixed(0)} s)` : `${fmtTime(T)} (${(T - rec.t0).toFixed(1)} s)`);
    // Drawn when asked: every few seconds while live, and while paused or replaying only
    // on a seek (which moves the cursor alone, so that a drag keeps its pointer).
    if (force) {
      app.due.timeline = performance.now();
      const box = $("timeline");
      if (!app.timelineWidth) app.timelineWidth = box.clientWidth || 1200;
      if (window.RaftTimeline && typeof window.RaftTimeline.render === "function") {
        const recording = timelineRecording(rec, tEnd);
        recording.marks = thinMarks(recording.marks, recording.duration, app.timelineWidth);
        app.timeline = window.RaftTimeline.render(box, recording, {
          width: app.timelineWidth,
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

  /** Commit marks at most one per 6 pixels of timeline (a long run under load has one a
   *  second): the others are drawn, the export keeps them all. */
  function thinMarks(marks, duration, width) {
    const px = Math.max(1e-6, (duration || 1) / Math.max(100, width - 100)) * 6;
    let last = -Infinity;
    return marks.filter((m) => {
      if (m.kind !== "commit") return true;
      if (m.t - last < px) return false;
      last = m.t;
      return true;
    });
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
    wake(true);
    if (app.cursor !== null) { resume(); return; }
    app.cursor = viewTime();
    app.playFrom = null;
    setMode();
    drawTimeline(true);
  }

  function resume() {
    app.dirty = true;
    wake(true);
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
    wake(true);
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
    wake(true);
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
      wake(true);
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

  /** Draw soon: at the next frame when ``urgent`` (every panel), else at the next pass. */
  function wake(urgent) {
    if (urgent) app.urgent = true;
    if (app.loopFrame !== null || document.hidden) return;
    if (!urgent && app.loopTimer !== null && app.loopAt - performance.now() <= MOVING_MS) return;
    clearTimeout(app.loopTimer);
    app.loopTimer = null;
    app.loopFrame = requestAnimationFrame(() => { app.loopFrame = null; frame(); });
  }

  function later(ms) {
    clearTimeout(app.loopTimer);
    app.loopAt = performance.now() + ms;
    app.loopTimer = setTimeout(() => { app.loopTimer = null; wake(); }, ms);
  }

  /** One pass: each part drawn when it is due and something it shows changed; every part
   *  at once after a role, term, leader or up/down change, so that they always agree. */
  function frame() {
    if (document.hidden) return; // drawn again when the page is shown
    const ms = performance.now();
    if (app.loaded && now() > app.loadedUntil) setLoaded(false);
    const T = viewTime();
    const view = buildView(app.rec, T);
    const rates = view.loaded ? RATES.loaded : RATES.rest;
    const stateKey = view.nodes.map((v) => `${v.id}:${v.role}:${v.term}`).join() + `|${view.leader ? view.leader.id : ""}`;
    const all = app.urgent || app.dirty || stateKey !== app.stateKey;
    app.stateKey = stateKey;
    app.urgent = false;
    const due = (part) => all || ms - app.due[part] >= rates[part];
    const playing = !!app.playFrom;
    let moving = false;
    if (due("ring") || app.moving || app.ringNow || playing) {
      app.due.ring = ms;
      app.ringNow = false;
      drawRing(view);
      moving = ring.dots.size > 0;
    }
    if (due("panels")) {
      app.due.panels = ms;
      app.dirty = false;
      drawHealth(view);
      drawStep(view);
      drawControl();
      drawTransferOptions(view);
      if (!view.nodes.length && !app.replay) setSummary(app.noCluster || "looking for the cluster…");
      else {
        const up = view.nodes.filter((v) => v.up).length;
        const what = app.replay ? "replay" : `${up}/${view.nodes.length} nodes up`;
        setSummary(`${what} · leader ${view.leader ? `${view.leader.id}, term ${view.leader.term}` : "none"} · ${clockMode()} clock`);
      }
    }
    if (due("grid")) {
      app.due.grid = ms;
      drawGrid(view);
    }
    // The timeline: every few seconds while live, and at once when a role, a term or a
    // fault changes (with the other panels).
    const live = app.cursor === null && !app.playFrom;
    const tkey = stateKey + `|${app.rec.faults.length}|${app.rec.faults.filter((f) => f.end === null).length}`;
    if (live && (tkey !== app.timelineKey || ms - app.due.timeline >= rates.timeline)) {
      app.timelineKey = tkey;
      drawTimeline(true);
    } else if (all || playing || ms - app.due.label >= rates.panels) {
      app.due.label = ms;
      drawTimeline(false);
    }
    app.moving = moving;
    // The next pass: smooth while dots move or a replay plays, else the ring's pace (a
    // paused view waits for an action). Events that matter wake it earlier.
    if (moving || playing) later(MOVING_MS);
    else if (app.cursor === null) later(rates.ring);
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
    document.addEventListener("click", () => { app.dirty = true; wake(true); }, true);
    document.addEventListener("keydown", () => { app.dirty = true; wake(true); }, true);
    $("grid").addEventListener("click", onGridClick);
    window.addEventListener("resize", () => {
      app.gridKey = "";
      app.gridCols = 0;
      app.timelineWidth = 0;
      wake(true);
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) wake(true); });
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
    else if (k === "h") { app.showHeartbeats = !app.showHeartbeats; $("opt-heartbeats").checked = app.showHeartbeats; wake(true); }
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
    wake(true);
  }

  // For tests and the curious: the recording and a few actions.
  window.raftlogDashboard = {
    exportRecording: () => exportRecording(app.live),
    importRecording: (obj) => { app.rec = importRecording(obj); app.replay = true; app.cursor = app.rec.t0; app.layoutKey = null; app.gridKey = ""; setMode(); wake(true); },
    seek, goLive, pause,
    nodeUrl: (id) => (app.nodes.get(id) || {}).url || null,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
