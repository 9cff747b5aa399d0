// p2pshare web UI: one page, hash-routed, fed by the API (/api/v1) and its
// event stream. Every string from the node or from peers goes into the
// page through textContent (el() below), never as HTML.
"use strict";

const state = {
  id: null,
  files: [],
  published: new Map(),  // cid -> Entry
  available: new Map(),  // cid -> Remote
  jobs: new Map(),       // id -> Job
  peers: new Map(),      // peer_id -> Peer
};
const pages = ["overview", "files", "available", "transfers", "peers"];

// el makes an element: attrs are properties (class, title, ...) or
// data-/aria- attributes; children are nodes or text.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") e.setAttribute(k, String(v));
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function $(id) { return document.getElementById(id); }

function notice(text, isError) {
  const n = $("notice");
  n.textContent = text;
  n.className = isError ? "error" : "";
}

async function api(method, path, body, raw) {
  const opt = { method, headers: {} };
  if (body !== undefined) {
    opt.body = raw ? body : JSON.stringify(body);
    if (!raw) opt.headers["Content-Type"] = "application/json";
  }
  const r = await fetch("/api/v1/" + path, opt);
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (r.status === 401) {
    location.reload(); // the session is gone (the node restarted): show the login page
    throw new Error("not logged in");
  }
  if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
  return data;
}

// Formatting.
function size(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + " " + u[i];
}
function rate(r) { return r > 0 ? size(r) + "/s" : ""; }
function when(t) {
  if (!t) return "never";
  const d = new Date(t);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return d.toLocaleString();
}
function short(id) { return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id; }
function flag(text) { return el("span", { class: "flag " + text.replace(/\s+/g, "-") }, text); }

// Loading.
async function loadAll() {
  const [id, files, published, available, jobs, peers] = await Promise.all([
    api("GET", "id"), api("GET", "files"), api("GET", "published"),
    api("GET", "available"), api("GET", "gets"), api("GET", "peers"),
  ]);
  state.id = id;
  state.files = files;
  state.published = new Map(published.map(e => [e.cid, e]));
  state.available = new Map(available.map(r => [r.cid, r]));
  state.jobs = new Map(jobs.map(j => [j.id, j]));
  state.peers = new Map(peers.map(p => [p.peer_id, p]));
  render();
}

async function reloadFiles() {
  state.files = await api("GET", "files");
  render();
}

// Rendering: the current page is redrawn from state, at most once a frame.
let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; draw(); });
}

function currentPage() {
  const p = location.hash.slice(1);
  return pages.includes(p) ? p : "overview";
}

function draw() {
  const page = currentPage();
  for (const p of pages) $("page-" + p).hidden = p !== page;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  ({ overview: drawOverview, files: drawFiles, available: drawAvailable, transfers: drawTransfers, peers: drawPeers })[page]();
}

function fill(bodyId, emptyId, rows) {
  $(bodyId).replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
}

function activeJobs() { return [...state.jobs.values()].filter(j => !["done", "failed", "paused", "canceled"].includes(j.state)); }

function drawOverview() {
  $("ov-peers").textContent = [...state.peers.values()].filter(p => p.online).length + " / " + state.peers.size;
  $("ov-published").textContent = state.published.size;
  $("ov-available").textContent = state.available.size;
  $("ov-transfers").textContent = activeJobs().length;
  const id = state.id;
  if (!id) return;
  const rows = [["Peer ID", id.peer_id], ["Version", id.version], ["Reachability", id.reachability],
    ["Share folder", id.share_dir], ["Download folder", id.download_dir]];
  $("ov-node").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "–")]));
}

function drawFiles() {
  if (state.id) $("sharedir").textContent = state.id.share_dir;
  const rows = state.files.map(f => {
    const pub = f.published;
    const btn = el("button", {
      type: "button", class: pub ? "" : "secondary", "aria-pressed": pub,
      "data-name": f.name, title: pub ? "Stop publishing " + f.name : "Publish " + f.name,
      onclick: () => togglePublish(f, btn),
    }, pub ? "Published" : "Publish");
    return el("tr", { "data-name": f.name },
      el("td", { class: "name" }, f.name, f.changed ? el("span", { class: "flag waiting", title: "changed on disk since published: publish again" }, " changed") : null),
      el("td", { class: "n" }, size(f.size)),
      el("td", { class: "hide-narrow" }, when(f.modified)),
      el("td", {}, btn));
  });
  fill("files-body", "files-empty", rows);
}

async function togglePublish(f, btn) {
  btn.disabled = true;
  try {
    if (f.published && !f.changed) {
      await api("POST", "unpublish", { names: [f.cid] });
      notice("Withdrew " + f.name + ".");
    } else {
      await api("POST", "publish", { names: [f.name] });
      notice("Published " + f.name + ".");
    }
  } catch (e) {
    notice(e.message, true);
  }
  await reloadFiles().catch(e => notice(e.message, true));
}

function upload(ev) {
  ev.preventDefault();
  const input = $("upload-file");
  const file = input.files[0];
  if (!file) return;
  const bar = $("upload-progress");
  const btn = ev.target.querySelector("button");
  bar.hidden = false;
  bar.value = 0;
  btn.disabled = true;
  // XMLHttpRequest rather than fetch: it reports upload progress.
  const x = new XMLHttpRequest();
  x.open("POST", "/api/v1/upload?name=" + encodeURIComponent(file.name));
  x.upload.onprogress = e => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
  x.onloadend = () => {
    btn.disabled = false;
    bar.hidden = true;
    if (x.status === 201) {
      notice("Added " + file.name + " to the share folder. Publish it to share it.");
      input.value = "";
    } else {
      let msg = "upload failed";
      try { msg = JSON.parse(x.responseText).error; } catch (_) { if (x.status === 0) msg = "upload failed: connection lost"; }
      notice(msg, true);
    }
    reloadFiles().catch(e => notice(e.message, true));
  };
  x.send(file);
}

function drawAvailable() {
  const q = $("search").value.trim().toLowerCase();
  const list = [...state.available.values()]
    .filter(r => !q || r.name.toLowerCase().includes(q) || r.cid.toLowerCase().includes(q))
    .sort((a, b) => a.name.localeCompare(b.name));
  const busy = new Set(activeJobs().map(j => j.cid));
  const rows = list.map(r => {
    const online = r.providers.filter(p => p.online).length;
    return el("tr", { "data-cid": r.cid },
      el("td", { class: "name" }, r.name),
      el("td", { class: "n" }, size(r.size)),
      el("td", {}, online + " online / " + r.providers.length),
      el("td", { class: "mono hide-narrow", title: r.cid }, short(r.cid)),
      el("td", {}, el("button", {
        type: "button", "data-cid": r.cid, disabled: busy.has(r.cid), title: "Get " + r.name,
        onclick: ev => getFile(r, ev.target),
      }, busy.has(r.cid) ? "Getting…" : "Get")));
  });
  fill("available-body", "available-empty", rows);
}

async function getFile(r, btn) {
  btn.disabled = true;
  try {
    const j = await api("POST", "get", { target: r.cid });
    state.jobs.set(j.id, j);
    notice("Getting " + r.name + " (see Transfers).");
  } catch (e) {
    notice(e.message, true);
    btn.disabled = false;
  }
  render();
}

function drawTransfers() {
  const list = [...state.jobs.values()].sort((a, b) => Number(b.id) - Number(a.id));
  const rows = list.map(j => {
    const pct = j.size > 0 ? Math.floor(100 * j.done / j.size) : (j.state === "done" ? 100 : 0);
    const live = !["done", "failed", "paused", "canceled"].includes(j.state);
    return el("tr", { "data-job": j.id, "data-state": j.state },
      el("td", { class: "name", title: j.path || j.cid }, j.name),
      el("td", {}, el("div", { class: "bar" },
        el("progress", { max: 100, value: pct, "aria-label": "progress of " + j.name }),
        el("span", { class: "pct" }, pct + "%"))),
      el("td", { class: "n hide-narrow" }, rate(j.rate)),
      el("td", { class: "n hide-narrow" }, live ? j.providers : ""),
      el("td", { title: j.error || "" }, flag(j.state), j.error ? el("div", { class: "sub" }, j.error) : null),
      el("td", {}, live ? el("button", { type: "button", class: "secondary", onclick: ev => cancelJob(j, ev.target) }, "Cancel") : null));
  });
  fill("transfers-body", "transfers-empty", rows);
}

async function cancelJob(j, btn) {
  btn.disabled = true;
  try {
    await api("POST", "cancel", { target: j.id });
    notice("Canceled " + j.name + ".");
  } catch (e) {
    notice(e.message, true);
    btn.disabled = false;
  }
}

function drawPeers() {
  const list = [...state.peers.values()].sort((a, b) => (b.online - a.online) || a.peer_id.localeCompare(b.peer_id));
  const rows = list.map(p => el("tr", { "data-peer": p.peer_id, "data-online": p.online },
    el("td", { class: "mono", title: p.peer_id }, short(p.peer_id)),
    el("td", { title: p.last_error || "" }, flag(p.online ? "online" : "offline")),
    el("td", { class: "n" }, p.rtt_ms > 0 ? p.rtt_ms.toFixed(1) + " ms" : "–"),
    el("td", {}, when(p.last_seen)),
    el("td", { class: "hide-narrow" }, p.link || "–"),
    el("td", { class: "hide-narrow" }, p.source)));
  fill("peers-body", "peers-empty", rows);
}

// Live updates.
function connectEvents() {
  const live = $("live");
  const es = new EventSource("/api/v1/events");
  // Events that arrive while the lists load are applied after them: the
  // lists may have been read before the event's change.
  let loading = null;
  const on = (name, f) => es.addEventListener(name, ev => {
    const d = JSON.parse(ev.data);
    if (loading) loading.push(() => f(d));
    else { f(d); render(); }
  });
  es.addEventListener("ready", () => {
    // (Re)connected: what happened meanwhile is in the lists.
    loading = [];
    loadAll().then(() => {
      live.textContent = "live";
      live.className = "live on";
    }, e => notice(e.message, true)).finally(() => {
      const queued = loading;
      loading = null;
      for (const f of queued) f();
      render();
    });
  });
  on("peer", d => state.peers.set(d.peer.peer_id, d.peer));
  on("published", e => { state.published.set(e.cid, e); reloadFiles().catch(() => {}); });
  on("unpublished", e => { state.published.delete(e.cid); reloadFiles().catch(() => {}); });
  on("available", d => {
    if (d.change === "removed") state.available.delete(d.file.cid);
    else state.available.set(d.file.cid, d.file);
  });
  on("transfer", j => state.jobs.set(j.id, j));
  es.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
  };
}

function start() {
  window.addEventListener("hashchange", render);
  $("search").addEventListener("input", render);
  $("upload").addEventListener("submit", upload);
  // "last seen" ages: redraw now and then.
  setInterval(render, 10000);
  render();
  connectEvents();
}

start();
