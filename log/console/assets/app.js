// The auditor's console. Every view reads the log through its HTTP API and
// verifies what it can in this browser (verify.js); nothing the server says
// about itself is shown as a verdict. docs/console.md is the manual.
//
// Storage: the bearer token lives in sessionStorage (this tab only, gone
// when it closes); the pinned public keys and the last checkpoint this
// browser verified live in localStorage, so the next visit checks that the
// log is consistent with what was seen before.

import * as v from "./verify.js";
import { heatmap, lineChart, barChart } from "./charts.js";

const TOKEN = "agentlog.token";
const KEYS = "agentlog.keys";
const SEEN = "agentlog.seen."; // + origin: the largest checkpoint verified here
const HISTORY = "agentlog.history."; // + origin: [{size, time, root}] of checkpoints verified here

// Measurements the browser tests read (first row and end of a search).
window.agentlogConsole = { search: null };

const main = document.getElementById("main");
const banner = document.getElementById("banner");

// h builds an element; strings become text nodes, never HTML.
export function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, val] of Object.entries(attrs || {})) {
    if (val === undefined || val === null || val === false) continue;
    if (k === "class") e.className = val;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), val);
    else e.setAttribute(k, val === true ? "" : val);
  }
  append(e, kids);
  return e;
}

function append(e, kids) {
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

function show(...kids) {
  main.replaceChildren();
  append(main, kids);
}

// ---- session: token and pinned keys ----

function token() {
  return sessionStorage.getItem(TOKEN);
}

let pinned = null; // parsed keys

async function loadKeys() {
  const raw = localStorage.getItem(KEYS);
  if (!raw) return null;
  const k = JSON.parse(raw);
  const logKey = await v.parseVerifierKey(k.log);
  const timeKey = k.time ? await v.parseVerifierKey(k.time) : null;
  const witnesses = [];
  for (const w of k.witnesses || []) witnesses.push(await v.parseVerifierKey(w));
  return { logKey, timeKey, witnesses, text: k };
}

class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { auth = true, signal } = {}) {
  const headers = {};
  if (auth) headers.Authorization = "Bearer " + token();
  const r = await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = await r.json();
      if (j.error) msg = `${r.status}: ${j.error}`;
    } catch {
      // not JSON
    }
    if (r.status === 401 && auth) {
      sessionStorage.removeItem(TOKEN);
    }
    throw new HTTPError(r.status, msg);
  }
  return r;
}

async function apiJSON(path, opts) {
  return (await api(path, opts)).json();
}

// ---- the log's state, verified ----

let current = null; // the latest verified checkpoint

function showBanner(title, message, extra = []) {
  banner.replaceChildren(h("h2", {}, title), h("div", {}, message), ...extra);
  banner.hidden = false;
}

function clearBanner() {
  banner.hidden = true;
  banner.replaceChildren();
}

function history(origin) {
  try {
    return JSON.parse(localStorage.getItem(HISTORY + origin) || "[]");
  } catch {
    return [];
  }
}

function remember(cp) {
  localStorage.setItem(SEEN + cp.origin, cp.raw);
  const hist = history(cp.origin);
  const last = hist[hist.length - 1];
  if (!last || BigInt(last.size) !== cp.size) {
    hist.push({ size: String(cp.size), time: cp.time, root: v.b64encode(cp.root), seen: Date.now() });
    while (hist.length > 200) hist.shift();
    localStorage.setItem(HISTORY + cp.origin, JSON.stringify(hist));
  }
}

// consistencyResult is the outcome of the last check, for the consistency view.
let consistencyResult = null;

// checkLog fetches /checkpoint, verifies it with the pinned keys and checks
// it is consistent with the checkpoint this browser verified before. On any
// failure it shows the red banner and throws.
async function checkLog() {
  let raw;
  try {
    raw = await (await api("/checkpoint", { auth: false })).text();
  } catch (e) {
    throw new Error(`cannot fetch the checkpoint: ${e.message}`);
  }
  let cp;
  try {
    cp = await v.openCheckpoint(raw, pinned);
  } catch (e) {
    current = null;
    consistencyResult = { ok: false, message: e.message, newRaw: raw };
    showBanner("The log's checkpoint does not verify", e.message + ". Nothing this console shows can be trusted until it does.", [
      h("pre", { class: "mono", id: "banner-new" }, raw),
    ]);
    throw e;
  }
  const seenRaw = localStorage.getItem(SEEN + cp.origin);
  if (seenRaw) {
    let seen = null;
    try {
      seen = await v.openCheckpoint(seenRaw, { logKey: pinned.logKey });
    } catch {
      // Stored under another key (the auditor re-pinned): start afresh.
    }
    if (seen) {
      try {
        const [a, b] = seen.size <= cp.size ? [seen, cp] : [cp, seen];
        let hashes = [];
        if (a.size > 0n && a.size < b.size) {
          const p = await apiJSON(`/v1/proof/consistency?old=${a.size}&size=${b.size}`, { auth: false });
          hashes = p.hashes.map(v.b64decode);
        }
        await v.verifyConsistency(a.size, b.size, hashes, a.root, b.root);
        consistencyResult = { ok: true, oldSize: seen.size, newSize: cp.size, oldRaw: seenRaw, newRaw: raw };
      } catch (e) {
        current = null;
        consistencyResult = { ok: false, message: e.message, oldRaw: seenRaw, newRaw: raw, oldSize: seen.size, newSize: cp.size };
        showBanner(
          "The log is not consistent with what this browser saw before",
          `${e.message}. Either the log rewrote its history or it shows you a different view than before. Keep both checkpoints: together they prove it.`,
          [
            h("div", {}, `Seen before (tree size ${seen.size}):`),
            h("pre", { class: "mono", id: "banner-old" }, seenRaw),
            h("div", {}, `Served now (tree size ${cp.size}):`),
            h("pre", { class: "mono", id: "banner-new" }, raw),
          ],
        );
        throw e;
      }
    } else {
      consistencyResult = { ok: true, first: true, newSize: cp.size, newRaw: raw };
    }
  } else {
    consistencyResult = { ok: true, first: true, newSize: cp.size, newRaw: raw };
  }
  if (!seenRaw || cp.size >= BigInt(seenRaw.split("\n")[1] || 0)) remember(cp);
  clearBanner();
  current = cp;
  return cp;
}

// ---- formatting ----

function fmtTime(s) {
  if (s === null || s === undefined) return "";
  const d = typeof s === "number" ? new Date(s * 1000) : new Date(s);
  return d.toISOString().replace(".000Z", "Z");
}

function age(seconds) {
  const d = Math.max(0, Date.now() / 1000 - seconds);
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 172800) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} days ago`;
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]));
}

function badge(kind, text, id) {
  return h("span", { class: "badge " + kind, id }, text);
}

function errorBox(e) {
  return h("p", { class: "error", id: "error" }, e.message || String(e));
}

// ---- streaming queries ----

// streamQuery runs GET /v1/query and calls onMatch for each match as its
// line arrives (parsed, or with raw the line itself: a large answer is then
// kept as compact strings and parsed only where shown); it returns the
// summary.
async function streamQuery(params, onMatch, signal, raw = false) {
  const r = await api("/v1/query?" + params.toString(), { signal });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let summary = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let start = 0;
    let nl;
    while ((nl = buf.indexOf("\n", start)) >= 0) {
      const line = buf.slice(start, nl);
      start = nl + 1;
      if (!line) continue;
      if (line.startsWith('{"summary"')) summary = JSON.parse(line).summary;
      else onMatch(raw ? line : JSON.parse(line));
    }
    buf = buf.slice(start);
    if (done) break;
  }
  if (!summary) throw new Error("the query answer ended without its summary line");
  if (summary.error) throw new Error(summary.error);
  return summary;
}

// collect runs a query to completion (following cursors) and returns the matches.
async function collect(params, max = 100000) {
  const out = [];
  let p = new URLSearchParams(params);
  for (;;) {
    const s = await streamQuery(p, (m) => out.push(m));
    if (!s.cursor || out.length >= max) return { matches: out, summary: s };
    p = new URLSearchParams(params);
    p.set("cursor", s.cursor);
  }
}

// ---- views ----

const views = {};

views.signin = async () => {
  const k = JSON.parse(localStorage.getItem(KEYS) || "null") || {};
  const err = h("p", { class: "error", id: "signin-error" });
  const form = h(
    "form",
    { class: "signin panel", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "The token stays in this tab (session storage) and is sent only to this server. The keys are public: pin the ones you received from the log operator through a channel you trust; the console verifies every checkpoint and proof against them, never against what the server says."),
    h("label", {}, "Auditor or admin token", h("input", { type: "password", name: "token", id: "token", autocomplete: "off", required: true })),
    h("label", {}, "Log key (the content of log.pub)", h("input", { name: "log", id: "logkey", class: "mono", value: k.log || "", required: true })),
    h("label", {}, "Timestamp key (time.pub, optional: verifies the checkpoint's time)", h("input", { name: "time", id: "timekey", class: "mono", value: k.time || "" })),
    h("label", {}, "Witness keys (optional, one verifier key a line)", h("textarea", { name: "witnesses", id: "witnesskeys", rows: 3 }, (k.witnesses || []).join("\n"))),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", id: "signin-submit" }, "Sign in")),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const keys = {
      log: String(fd.get("log")).trim(),
      time: String(fd.get("time")).trim(),
      witnesses: String(fd.get("witnesses")).split("\n").map((s) => s.trim()).filter(Boolean),
    };
    try {
      const logKey = await v.parseVerifierKey(keys.log);
      if (logKey.alg !== v.ALG_ED25519) throw new Error("the log key must be an Ed25519 note key (type 1)");
      if (keys.time && ![v.ALG_COSIGNATURE_V1, v.ALG_ED25519].includes((await v.parseVerifierKey(keys.time)).alg)) {
        throw new Error("the timestamp key must be an Ed25519 cosignature v1 key (type 4, or the same key as type 1)");
      }
      for (const w of keys.witnesses) await v.parseVerifierKey(w);
      sessionStorage.setItem(TOKEN, String(fd.get("token")).trim());
      // Check the token before going on.
      await api("/v1/query?limit=1&kind=none");
      localStorage.setItem(KEYS, JSON.stringify(keys));
      pinned = await loadKeys();
      location.hash = "#/overview";
    } catch (e) {
      if (!(e instanceof HTTPError) || e.status === 401) sessionStorage.removeItem(TOKEN);
      err.textContent = e.message;
    }
  });
  show(form);
};

function signatureTable(cp) {
  return h(
    "table",
    { id: "signatures" },
    h("thead", {}, h("tr", {}, h("th", {}, "signer"), h("th", {}, "role"), h("th", {}, "key ID"), h("th", {}, "time"), h("th", {}, "checked here"))),
    h(
      "tbody",
      {},
      cp.signatures.map((s) =>
        h(
          "tr",
          {},
          h("td", { class: "mono" }, s.name),
          h("td", {}, s.role),
          h("td", { class: "mono" }, s.keyID),
          h("td", {}, s.time !== null ? `${fmtTime(s.time)} (${age(s.time)})` : ""),
          h("td", {}, s.verified ? badge("ok", "signature verified") : badge("none", "key not pinned")),
        ),
      ),
    ),
  );
}

views.overview = async () => {
  const cp = await checkLog();
  const hist = history(cp.origin);
  let health = null;
  try {
    health = await (await fetch("/healthz", { cache: "no-store", credentials: "omit" })).json();
  } catch {
    // shown as unavailable
  }
  const points = hist.filter((p) => p.time).map((p) => ({ x: p.time, y: Number(p.size) }));
  const server = [];
  if (health) {
    server.push(["status", h("span", { id: "health-status" }, health.status || "")]);
    server.push(["tree size", String(health.tree_size ?? "")]);
    server.push(["append queue", `${health.queue_entries ?? 0} entries`]);
    const c = health.checkpoint;
    if (c) server.push(["signing", `last signed ${c.signed_at} (size ${c.size})${c.refusing ? ", REFUSING to sign" : ""}${c.last_error ? ", error: " + c.last_error : ""}`]);
    const k = health.clock;
    if (k) {
      const ms = (Number(k.offset_ns || 0) / 1e6).toFixed(1);
      server.push(["NTP clock", `${k.synced ? "synced" : "not synced"}${k.degraded ? " (degraded)" : ""}, offset ${ms} ms, ${k.answered}/${k.servers} servers answered${k.last_sync && !k.last_sync.startsWith("0001") ? ", last sync " + k.last_sync : ""}${k.last_error ? ", " + k.last_error : ""}`]);
    }
    if (health.witnesses) server.push(["witnesses", JSON.stringify(health.witnesses)]);
    if (health.mirror) server.push(["mirror", JSON.stringify(health.mirror)]);
    if (health.anomaly) server.push(["alert rules", `examined up to ${health.anomaly.examined_size}, ${health.anomaly.lag_entries} behind${(health.anomaly.webhooks || []).length ? ", webhooks " + JSON.stringify(health.anomaly.webhooks) : ""}`]);
    for (const p of health.problems || []) server.push(["problem", h("span", { class: "error" }, p)]);
  }
  show(
    h("h1", {}, "Overview"),
    h(
      "div",
      { class: "grid" },
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Latest checkpoint ", badge("ok", "signature verified in this browser", "cp-verified")),
        kv([
          ["origin", h("span", { class: "mono" }, cp.origin)],
          ["tree size", h("span", { id: "tree-size" }, String(cp.size))],
          ["root hash", h("span", { class: "mono" }, v.b64encode(cp.root))],
          ["signed at", cp.time !== null ? `${fmtTime(cp.time)} (${age(cp.time)}, timestamp key verified)` : "no timestamp key pinned"],
          ["consistency", consistencyResult && consistencyResult.first ? "first checkpoint this browser has seen of this log" : `consistent with tree size ${consistencyResult.oldSize} seen before (proof verified here)`],
        ]),
      ),
      h("div", { class: "panel" }, h("h2", {}, "Server status ", h("span", { class: "muted" }, "(as reported by the server, not verified)")), health ? kv(server) : h("p", {}, "unavailable")),
    ),
    h("h2", {}, "Signatures"),
    signatureTable(cp),
    h("h2", {}, "Growth (checkpoints verified by this browser)"),
    points.length >= 2 ? lineChart(points, { width: 900, height: 180, xLabel: "signing time", yLabel: "tree size" }) : h("p", { class: "muted" }, "The chart fills in as this browser verifies more checkpoints."),
    h("h2", {}, "Checkpoint"),
    h("pre", { class: "mono", id: "checkpoint-raw" }, cp.raw),
  );
};

const FILTERS = ["agent", "action", "tool", "resource", "outcome", "kind", "session", "task", "config"];
const RANGE = ["from", "to", "outside_hours", "tz", "weekdays"];

function searchForm(params, onSubmit, fields = FILTERS) {
  const input = (name, placeholder) => h("label", {}, name, h("input", { name, id: "q-" + name, value: params.get(name) || "", placeholder }));
  const form = h(
    "form",
    { class: "filters", id: "search-form" },
    fields.map((f) => input(f, f === "resource" ? "prefix with *" : "")),
    input("from", "2026-01-01T00:00:00Z"),
    input("to", "2026-04-01T00:00:00Z"),
    input("outside_hours", "09:00-17:00"),
    input("tz", "UTC"),
    input("weekdays", "mon-fri"),
    input("limit", "1000"),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", id: "q-submit" }, "Search")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, val] of new FormData(form)) if (String(val).trim()) p.set(k, String(val).trim());
    onSubmit(p);
  });
  return form;
}

function exportCommand(params) {
  const flag = { outside_hours: "outside-hours" };
  const parts = ["agentlog evidence export --server", location.origin, "--token-file auditor.token"];
  for (const [k, val] of params) {
    if (k === "limit" || k === "cursor") continue;
    const f = flag[k] || k;
    parts.push(`--${f}`, /^[A-Za-z0-9_./:@=-]+$/.test(val) ? val : `'${val.replaceAll("'", "'\\''")}'`);
  }
  parts.push("--log-key log.pub --out evidence");
  return parts.join(" ");
}

// The columns of a result table.
function resultRow(m) {
  const e = m.entry || {};
  return h(
    "tr",
    {},
    h("td", { class: "num" }, h("a", { href: `#/entry/${m.index}` }, String(m.index))),
    h("td", { class: "mono" }, e.time || ""),
    h("td", {}, e.kind || ""),
    h("td", {}, e.agent ? h("a", { href: `#/agent/${encodeURIComponent(e.agent)}` }, e.agent) : ""),
    h("td", {}, e.action || ""),
    h("td", {}, e.tool || ""),
    h("td", { class: "mono" }, e.resource || ""),
    h("td", {}, e.outcome || ""),
  );
}

function resultTable(id) {
  const tbody = h("tbody", { id: id + "-rows" });
  const table = h(
    "table",
    { id, class: "results" },
    h("thead", {}, h("tr", {}, ["index", "time", "kind", "agent", "action", "tool", "resource", "outcome"].map((c) => h("th", {}, c)))),
    tbody,
  );
  return { table, tbody };
}

// rowRenderer appends rows in batches, one batch per animation frame, so
// the page stays responsive however fast matches arrive. It shows at most
// `page` rows until more are asked for; the rest wait in memory.
function rowRenderer(tbody, onFirst, page = 1000) {
  const all = [];
  let shown = 0;
  let limit = page;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const end = Math.min(all.length, limit, shown + 250);
    const frag = document.createDocumentFragment();
    for (let i = shown; i < end; i++) frag.append(resultRow(typeof all[i] === "string" ? JSON.parse(all[i]) : all[i]));
    tbody.append(frag);
    if (shown === 0 && end > 0 && onFirst) onFirst();
    shown = end;
    if (shown < Math.min(all.length, limit)) schedule();
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  };
  return {
    add(m) {
      all.push(m);
      if (all.length <= limit) schedule();
    },
    more() {
      limit += page;
      schedule();
    },
    get total() {
      return all.length;
    },
    get limit() {
      return limit;
    },
  };
}

let searchAbort = null;

views.search = async (params) => {
  await checkLog();
  const status = h("p", { id: "search-status", class: "muted" });
  const { table, tbody } = resultTable("results");
  const more = h("div", { class: "actions", id: "search-more" });
  const exp = h("div", { id: "search-export" });
  const form = searchForm(params, (p) => {
    location.hash = "#/search?" + p.toString();
  });
  show(h("h1", {}, "Search"), form, status, exp, table, more);
  if (![...params.keys()].some((k) => k !== "cursor")) {
    status.textContent = "Give filters and press Search. Resource values ending in * match a prefix.";
    return;
  }
  if (searchAbort) searchAbort.abort();
  searchAbort = new AbortController();
  const metrics = { started: performance.now(), firstRow: null, ended: null, matches: 0 };
  window.agentlogConsole.search = metrics;
  const showMore = h("button", { type: "button", id: "show-more", hidden: true }, "Show more rows");
  const r = rowRenderer(tbody, () => (metrics.firstRow = performance.now()));
  showMore.addEventListener("click", () => {
    r.more();
    showMore.hidden = r.total <= r.limit;
  });
  more.append(showMore);
  exp.replaceChildren(
    h("span", { class: "muted" }, "Export the same query as evidence that verifies offline: "),
    h("code", { id: "export-command" }, exportCommand(params)),
  );
  status.textContent = "Searching…";
  try {
    const p = new URLSearchParams(params);
    if (!p.has("limit")) p.set("limit", "1000");
    const s = await streamQuery(p, (m) => {
      metrics.matches++;
      r.add(m);
      if (metrics.matches % 5000 === 0) {
        status.textContent = `${metrics.matches} matches so far…`;
        showMore.hidden = r.total <= r.limit;
      }
    }, searchAbort.signal, true);
    metrics.ended = performance.now();
    metrics.summary = s;
    showMore.hidden = r.total <= r.limit;
    status.textContent = (r.total > r.limit ? `Showing the first ${r.limit} rows. ` : "") + `${s.matches} matches in index range [${s.start}, ${s.end}) of tree size ${s.tree_size}; examined up to ${s.next}.` + (s.cursor ? " More matches may follow." : " The range is complete.");
    more.replaceChildren(showMore);
    if (s.cursor) {
      const next = new URLSearchParams(params);
      next.set("cursor", s.cursor);
      more.append(h("a", { href: "#/search?" + next.toString(), id: "next-page" }, "Next page →"));
    }
  } catch (e) {
    if (e.name !== "AbortError") status.replaceChildren(errorBox(e));
  }
};

// verifyEntry fetches the entry's bytes from its C2SP entry bundle and its
// inclusion proof, and checks both against the verified checkpoint cp.
async function verifyEntry(index, cp) {
  const i = BigInt(index);
  if (i >= cp.size) throw new v.VerifyError(`entry ${index} is not yet under the latest checkpoint (tree size ${cp.size}); try again in a second`);
  const bundle = new Uint8Array(await (await api("/tile/" + v.bundlePath(i, cp.size))).arrayBuffer());
  const leaves = v.parseBundle(bundle);
  const leaf = leaves[Number(i % v.TILE_WIDTH)];
  if (!leaf) throw new v.VerifyError("the entry bundle does not hold this entry");
  const lh = await v.leafHash(leaf);
  const p = await apiJSON(`/v1/proof/inclusion?index=${i}&size=${cp.size}`, { auth: false });
  const hashes = p.hashes.map(v.b64decode);
  await v.verifyInclusion(i, cp.size, lh, hashes, cp.root);
  return { leaf, leafHash: lh, hashes };
}

views.entry = async (params, index) => {
  if (!/^(0|[1-9][0-9]*)$/.test(index)) throw new Error(`${JSON.stringify(index)} is not an entry index`);
  const cp = await checkLog();
  const state = h("div", { id: "entry-state" }, badge("none", "verifying…"));
  show(h("h1", {}, `Entry ${index}`), state);
  let res;
  try {
    res = await verifyEntry(index, cp);
  } catch (e) {
    state.replaceChildren(badge("bad", "verification failed", "entry-failed"), " ", h("span", { class: "error", id: "entry-error" }, e.message));
    return;
  }
  const text = new TextDecoder("utf-8", { fatal: true }).decode(res.leaf);
  const leaf = JSON.parse(text);
  state.replaceChildren(
    badge("ok", "verified in this browser", "verified"),
    h("span", { class: "muted" }, ` leaf hash computed here, inclusion proof checked against the root of tree size ${cp.size}, whose checkpoint verified with the pinned log key ${pinned.logKey.name}+${v.hex(pinned.logKey.id)}.`),
  );
  const links = [];
  if (leaf.agent) links.push(h("a", { href: `#/agent/${encodeURIComponent(leaf.agent)}` }, `agent ${leaf.agent}`));
  if (leaf.kind === "alert" && leaf.attributes && Number.isInteger(leaf.attributes.entry)) {
    links.push(h("a", { href: `#/entry/${leaf.attributes.entry}` }, `the action that raised it (${leaf.attributes.entry})`));
  }
  main.append(
    h("div", { class: "actions" }, links),
    h("h2", {}, "Leaf"),
    h("pre", { class: "mono", id: "leaf" }, JSON.stringify(leaf, null, 2)),
    kv([
      ["leaf hash", h("span", { class: "mono", id: "leaf-hash" }, v.b64encode(res.leafHash))],
      ["bytes", String(res.leaf.length)],
    ]),
    h("h2", {}, `Inclusion proof (${res.hashes.length} hashes, tree size ${cp.size})`),
    h("pre", { class: "mono", id: "proof" }, res.hashes.map(v.b64encode).join("\n") || "(empty: the tree has one leaf)"),
    h("h2", {}, "Checkpoint"),
    h("pre", { class: "mono" }, cp.raw),
    h("p", { class: "muted" }, "Verify it yourself: ", h("code", {}, `agentlog verify --log-key log.pub --time-key time.pub --index ${index} --token-file auditor.token`)),
  );
};

// weekday and hour of a time in a zone, cached per UTC hour.
function zoneBucketer(tz) {
  const f = new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "numeric", hourCycle: "h23" });
  const days = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
  const cache = new Map();
  return (iso) => {
    const ms = Date.parse(iso);
    const hourKey = Math.floor(ms / 3600000);
    let b = cache.get(hourKey);
    if (!b) {
      const parts = Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
      b = [days[parts.weekday], Number(parts.hour) % 24];
      cache.set(hourKey, b);
    }
    return b;
  };
}

function describe(e) {
  const a = e.attributes || {};
  switch (e.kind) {
    case "alert":
      return `alert ${a.rule || ""}: ${a.detail || ""}`;
    case "change":
      return `change ${e.action || ""} ${a.id || a.change || ""} by ${e.principal || ""}`;
    default:
      return `${e.action || e.kind} by ${e.principal || ""}${e.task ? " (task " + e.task + ")" : ""}`;
  }
}

views.agent = async (params, id) => {
  id = decodeURIComponent(id || "");
  await checkLog();
  const tz = params.get("tz") || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  show(h("h1", {}, `Agent ${id}`), h("p", { class: "muted", id: "agent-loading" }, "Loading…"));
  let agent = null;
  try {
    agent = await apiJSON(`/v1/agents/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  const base = new URLSearchParams({ agent: id, limit: "100000" });
  const lifecycle = [];
  for (const kind of ["agent", "session", "alert", "change"]) {
    const p = new URLSearchParams(base);
    p.set("kind", kind);
    const { matches } = await collect(p, 10000);
    lifecycle.push(...matches);
  }
  lifecycle.sort((a, b) => a.index - b.index);
  const actions = new URLSearchParams(base);
  actions.set("kind", "action");
  const { matches: acts } = await collect(actions, 100000);
  const bucket = zoneBucketer(tz);
  const grid = Array.from({ length: 7 }, () => new Array(24).fill(0));
  for (const m of acts) {
    const [d, hr] = bucket(m.entry.time);
    grid[d][hr]++;
  }
  const sessions = lifecycle.filter((m) => m.entry.kind === "session");
  const alerts = lifecycle.filter((m) => m.entry.kind === "alert");
  const tzForm = h("form", { class: "actions", id: "tz-form" }, h("label", {}, "zone", h("input", { name: "tz", value: tz, id: "agent-tz" })), h("button", { type: "submit" }, "Show"));
  tzForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/agent/${encodeURIComponent(id)}?tz=${encodeURIComponent(new FormData(tzForm).get("tz"))}`;
  });
  show(
    h("h1", {}, `Agent ${id}`),
    agent
      ? kv([
          ["status", h("span", { id: "agent-status" }, agent.status)],
          ["owner", agent.owner || ""],
          ["description", agent.description || ""],
          ["scope", h("code", {}, JSON.stringify(agent.scope || {}))],
          ["public key", h("span", { class: "mono" }, agent.public_key || "")],
        ])
      : h("p", { class: "muted" }, "Not registered in the identity store (the log's entries are shown below)."),
    h("p", { class: "muted" }, "Current status from the server; the timeline is the log's own record of it. Open an entry to verify it."),
    h("h2", {}, "Lifecycle"),
    h(
      "ul",
      { class: "timeline", id: "timeline" },
      lifecycle.map((m) => h("li", { class: m.entry.kind }, h("a", { href: `#/entry/${m.index}` }, `#${m.index}`), " ", h("span", { class: "mono" }, m.entry.time), " ", describe(m.entry))),
    ),
    h("h2", {}, `Activity by hour and weekday (${acts.length} actions)`),
    tzForm,
    heatmap(grid, { id: "heatmap", tz }),
    h("h2", {}, `Sessions (${sessions.length} session entries)`),
    sessionsTable(sessions),
    h("h2", {}, `Alerts (${alerts.length})`),
    alerts.length ? tableOf(alerts, "agent-alerts") : h("p", { class: "muted" }, "No alerts for this agent."),
  );
};

function sessionsTable(sessions) {
  const by = new Map();
  for (const m of sessions) {
    const e = m.entry;
    const id = e.session || (e.attributes && e.attributes.session) || "";
    if (!by.has(id)) by.set(id, { id, task: e.task || "", events: [] });
    by.get(id).events.push(m);
  }
  return h(
    "table",
    { id: "sessions" },
    h("thead", {}, h("tr", {}, h("th", {}, "session"), h("th", {}, "task"), h("th", {}, "events"))),
    h(
      "tbody",
      {},
      [...by.values()].map((s) =>
        h("tr", {}, h("td", { class: "mono" }, s.id), h("td", {}, s.task), h("td", {}, s.events.map((m) => h("span", {}, h("a", { href: `#/entry/${m.index}` }, m.entry.action || "event"), " ", m.entry.time, " ")))),
      ),
    ),
  );
}

function tableOf(matches, id) {
  const { table, tbody } = resultTable(id);
  for (const m of matches) tbody.append(resultRow(m));
  return table;
}

function kindView(kind, title, intro, columns) {
  return async (params) => {
    await checkLog();
    const form = searchForm(params, (p) => (location.hash = `#/${kind}s?` + p.toString()), ["agent"]);
    const status = h("p", { class: "muted", id: kind + "-status" }, "Loading…");
    show(h("h1", {}, title), h("p", { class: "muted" }, intro), form, status);
    const p = new URLSearchParams(params);
    p.set("kind", kind);
    if (!p.has("limit")) p.set("limit", "10000");
    const { matches, summary } = await collect(p, Number(p.get("limit")));
    const counts = new Map();
    for (const m of matches) {
      const k = columns.group(m.entry);
      counts.set(k, (counts.get(k) || 0) + 1);
    }
    status.textContent = `${matches.length} ${kind} entries in index range [${summary.start}, ${summary.end}) of tree size ${summary.tree_size}.`;
    const rows = matches.map((m) =>
      h("tr", {}, h("td", { class: "num" }, h("a", { href: `#/entry/${m.index}` }, String(m.index))), h("td", { class: "mono" }, m.entry.time), h("td", {}, m.entry.agent ? h("a", { href: `#/agent/${encodeURIComponent(m.entry.agent)}` }, m.entry.agent) : ""), ...columns.cells(m.entry)),
    );
    main.append(
      counts.size ? barChart([...counts].map(([label, value]) => ({ label, value })), { id: kind + "-chart", width: 600 }) : h("p", { class: "muted", id: kind + "-empty" }, `No ${kind} entries${params.toString() ? " match" : " in this log"}.`),
      h("table", { id: kind + "-table" }, h("thead", {}, h("tr", {}, ["index", "time", "agent", ...columns.heads].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    );
  };
}

views.alerts = kindView("alert", "Alerts", "Raised by the log's anomaly rules (CC7.2) and recorded in the log as entries of kind alert, each naming the action that raised it.", {
  heads: ["rule", "detail", "action"],
  group: (e) => (e.attributes && e.attributes.rule) || "?",
  cells: (e) => {
    const a = e.attributes || {};
    return [h("td", {}, a.rule || ""), h("td", {}, a.detail || ""), h("td", {}, Number.isInteger(a.entry) ? h("a", { href: `#/entry/${a.entry}` }, String(a.entry)) : "")];
  },
});

views.changes = kindView("change", "Changes", "Configuration changes (CC8.1): proposals, approvals and rejections recorded in the log as entries of kind change.", {
  heads: ["step", "by", "change", "config"],
  group: (e) => e.action || "?",
  cells: (e) => {
    const a = e.attributes || {};
    return [h("td", {}, e.action || ""), h("td", {}, e.principal || ""), h("td", { class: "mono" }, a.id || a.change || ""), h("td", { class: "mono" }, e.config || a.config || "")];
  },
});

views.consistency = async () => {
  let err = null;
  try {
    await checkLog();
  } catch (e) {
    err = e;
  }
  const r = consistencyResult || {};
  const origin = current ? current.origin : pinned.logKey.name;
  const hist = history(origin);
  const forget = h("button", { type: "button", id: "forget" }, "Forget what this browser saw");
  forget.addEventListener("click", () => {
    if (confirm("Forget the checkpoints this browser verified? The next visit starts afresh and cannot detect a fork from before.")) {
      localStorage.removeItem(SEEN + origin);
      localStorage.removeItem(HISTORY + origin);
      route();
    }
  });
  const recheck = h("button", { type: "button", class: "primary", id: "recheck" }, "Check now");
  recheck.addEventListener("click", () => route());
  show(
    h("h1", {}, "Consistency"),
    h("p", { class: "muted" }, "This browser keeps the largest checkpoint it verified for each log and, on every visit, checks a consistency proof from it to the new one. An inconsistency proves that the log forked or rewrote history: keep both checkpoints."),
    h("p", { id: "consistency-state" }, err ? badge("bad", "inconsistent or unverifiable", "consistency-bad") : badge("ok", r.first ? "first checkpoint seen: stored" : "consistent (verified in this browser)", "consistency-ok"), " ", err ? err.message : r.first ? "" : `tree size ${r.oldSize} → ${r.newSize}`),
    h("div", { class: "actions" }, recheck, forget),
    r.oldRaw ? [h("h2", {}, "Seen before"), h("pre", { class: "mono" }, r.oldRaw)] : null,
    r.newRaw ? [h("h2", {}, "Served now"), h("pre", { class: "mono" }, r.newRaw)] : null,
    h("h2", {}, `Checkpoints verified by this browser (${hist.length})`),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", {}, "tree size"), h("th", {}, "signed at"), h("th", {}, "root hash"))),
      h("tbody", {}, hist.slice().reverse().map((p) => h("tr", {}, h("td", { class: "num" }, p.size), h("td", {}, p.time ? fmtTime(p.time) : ""), h("td", { class: "mono" }, p.root)))),
    ),
  );
};

views.report = async (params) => {
  const now = new Date();
  const from = params.get("from") || `${now.getUTCFullYear()}-01-01T00:00:00Z`;
  const to = params.get("to") || `${now.getUTCFullYear() + 1}-01-01T00:00:00Z`;
  const tz = params.get("tz") || "UTC";
  const form = h(
    "form",
    { class: "filters", id: "report-form" },
    h("label", {}, "from", h("input", { name: "from", value: from, id: "r-from" })),
    h("label", {}, "to", h("input", { name: "to", value: to, id: "r-to" })),
    h("label", {}, "tz", h("input", { name: "tz", value: tz, id: "r-tz" })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "r-submit" }, "Show the command")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/report?" + new URLSearchParams(new FormData(form)).toString();
  });
  const q = (s) => (/^[A-Za-z0-9_./:@=+-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`);
  const cmd = `agentlog report --server ${location.origin} --token-file auditor.token --from ${q(from)} --to ${q(to)} --tz ${q(tz)} --log-key log.pub --out report`;
  const copy = h("button", { type: "button", id: "r-copy" }, "Copy");
  copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(cmd));
  const counts = new URLSearchParams({ from, to });
  // The report button: the server makes the same report as the command
  // (package client/report, with this token and the pinned keys) and
  // sends it with its evidence export as a zip, to verify offline.
  const status = h("div", { id: "report-status" });
  const make = h("button", { type: "button", class: "primary", id: "r-make" }, "Make the report");
  make.addEventListener("click", async () => {
    make.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, "Exporting the period's evidence and computing the report…"));
    try {
      const fd = new FormData(form);
      const p = new URLSearchParams({ from: fd.get("from"), to: fd.get("to"), tz: fd.get("tz"), log_key: pinned.text.log });
      if (pinned.text.time) p.set("time_key", pinned.text.time);
      const r = await api("report?" + p.toString());
      const blob = await r.blob();
      const name = (/filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "") || [])[1] || "agentlog-report.zip";
      const summary = r.headers.get("Agentlog-Report") || "";
      const link = h("a", { id: "report-download", href: URL.createObjectURL(blob), download: name }, `Download ${name}`);
      status.replaceChildren(
        h("p", {}, link, ` (${Math.ceil(blob.size / 1024)} KiB: report.html, report.json and the evidence export; ${summary.replaceAll("=", " ").replaceAll(";", ",")})`),
        h("p", { class: "muted" }, "Unzip it and check it offline with the pinned key; the check recomputes every number from the evidence:"),
        h("pre", { class: "mono" }, `unzip -d report ${name}\nagentlog evidence verify report --log-key log.pub`),
      );
    } catch (e) {
      status.replaceChildren(errorBox(e));
    } finally {
      make.disabled = false;
    }
  });
  show(
    h("h1", {}, "SOC 2 period report"),
    h("p", {}, "The report (CC6.1 to CC8.1: control, evidence with counts and charts, exceptions, how to verify) is made from the period's evidence export, so that it comes with the proofs behind every number and verifies offline. Choose the period, then make it here (the log's server exports the evidence with your token and the keys pinned here) or run the same on your machine:"),
    form,
    h("div", { class: "actions" }, make),
    status,
    h("pre", { class: "mono", id: "report-command" }, cmd),
    h("div", { class: "actions" }, copy),
    h("pre", { class: "mono" }, "agentlog evidence verify report --log-key log.pub   # checks the export and recomputes the report"),
    h("p", {}, "Look at the period here first: ", h("a", { href: "#/search?" + counts.toString() + "&kind=denied" }, "refused attempts"), ", ", h("a", { href: "#/alerts?" + counts.toString() }, "alerts"), ", ", h("a", { href: "#/search?" + counts.toString() + "&kind=agent" }, "provisioning"), ", ", h("a", { href: "#/search?" + counts.toString() + "&kind=session" }, "sessions"), "."),
  );
};

views.guide = async () => {
  const step = (title, text, cmd) => h("li", {}, h("strong", {}, title), " ", text, cmd ? h("pre", { class: "mono" }, cmd) : null);
  show(
    h("h1", {}, "Answering an auditor"),
    h("p", {}, "The same walkthrough as the README, in the console. Example: every time billing-bot touched customer data outside business hours in the first quarter, with proof."),
    h(
      "ol",
      { class: "steps" },
      step("Pin the keys.", "Get log.pub (and time.pub) from the operator through a channel you trust and paste them at sign-in. Every checkpoint and proof is checked against them here."),
      h("li", {}, h("strong", {}, "Query. "), "Search with agent billing-bot, resource customers/*, from 2026-01-01T00:00:00Z to 2026-04-01T00:00:00Z, outside hours 09:00-17:00, zone America/New_York, weekdays mon-fri: ", h("a", { href: "#/search?agent=billing-bot&resource=customers%2F*&from=2026-01-01T00%3A00%3A00Z&to=2026-04-01T00%3A00%3A00Z&outside_hours=09%3A00-17%3A00&tz=America%2FNew_York&weekdays=mon-fri" }, "run this query"), ". The same on the command line:", h("pre", { class: "mono" }, "bin/agentlog query --token-file auditor.token --agent billing-bot --resource 'customers/*' \\\n    --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z \\\n    --outside-hours 09:00-17:00 --tz America/New_York --weekdays mon-fri")),
      step("Open an entry.", "Its leaf hash is computed in this browser from the log's entry bundle, and its inclusion proof checked against a checkpoint signed by the pinned key: only then does it say “verified in this browser”."),
      step("Export the evidence.", "The search view shows the command for the same query; the export verifies offline:", "bin/agentlog evidence export --token-file auditor.token --agent billing-bot --resource 'customers/*' \\\n    --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z \\\n    --outside-hours 09:00-17:00 --tz America/New_York \\\n    --log-key log.pub --policy policy.txt --out evidence-q1\nbin/agentlog evidence verify evidence-q1 --log-key log.pub --policy policy.txt"),
      h("li", {}, h("strong", {}, "The alerts too. "), "The ", h("a", { href: "#/alerts?agent=billing-bot" }, "alerts"), " view lists what the anomaly rules raised, each linked to the action that raised it."),
      step("Keep watching.", "Each visit checks that the log is consistent with the last checkpoint this browser saw (the Consistency view); a fork shows as a red banner with both checkpoints."),
      step("The period report.", "For the workpapers, the SOC 2 report by criterion, with its evidence export:", "bin/agentlog report --token-file auditor.token --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z --out report-q1"),
    ),
  );
};

// ---- routing ----

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = h.split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "overview", arg: rest.join("/"), params: new URLSearchParams(query) };
}

let routing = 0;

async function route() {
  const my = ++routing;
  const { name, arg, params } = parseHash();
  const nav = document.getElementById("nav");
  if (!token() || !localStorage.getItem(KEYS)) {
    nav.hidden = true;
    return views.signin();
  }
  if (!pinned) {
    try {
      pinned = await loadKeys();
    } catch (e) {
      localStorage.removeItem(KEYS);
      return views.signin();
    }
  }
  nav.hidden = false;
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + name || a.getAttribute("href") === "#/" + name + "s");
  const view = views[name] && name !== "signin" ? views[name] : null;
  try {
    if (!view) throw new Error(`no view named ${JSON.stringify(name)}`);
    await view(params, arg);
  } catch (e) {
    if (my !== routing) return;
    if (e instanceof HTTPError && e.status === 401) {
      location.hash = "#/signin";
      return views.signin();
    }
    show(h("h1", {}, "Error"), errorBox(e));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  pinned = null;
  location.hash = "#/signin";
  route();
});
window.addEventListener("hashchange", route);
route();
