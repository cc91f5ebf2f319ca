// Operator page: every shard (status, node, seq, committed seq, queue depth, batch latency,
// recoveries, halt and band) with drain / resume / halt; the risk pool; recent rejects by reason.
// Panels for later read models (contracts, invoices, projector lag) register in PANELS.
"use strict";
(async () => {
  const { api, el, fill, flash, problem, every } = TD;
  const me = await TD.whoami();
  if (!me) return;
  const $ = (id) => document.getElementById(id);
  const seqs = new Map();
  const ms = (s) => (s == null ? "–" : (s * 1000).toFixed(1) + " ms");

  function batchLatency(s) {
    const secs = (s.match_s || 0) + (s.rows_s || 0) + (s.commit_s || 0);
    return s.batches ? ms(secs / s.batches) + " over " + s.batches + " batches" : "–";
  }
  function haltCell(s) {
    const out = [];
    if (s.halted) out.push(el("strong", { class: "halted" }, "HALTED"), " " + (s.halt_reason || ""),
      s.halted_until ? " until " + TD.time(s.halted_until) : "");
    const band = Object.keys(s).filter((k) => k.startsWith("band")).map((k) => k + " " + s[k]);
    if (band.length) out.push(el("div", { class: "note" }, band.join(" · ")));
    return out.length ? out : "–";
  }
  async function act(sid, what, body) {
    const r = await api("POST", "/v1/admin/shards/" + encodeURIComponent(sid) + "/" + what, body);
    flash(r.ok ? sid + ": " + what + " done" : sid + ": " + what + " refused: " + problem(r));
    loadShards();
  }
  function actions(s) {
    const sid = s.shard_id;
    const reason = el("input", { type: "text", maxlength: 200, placeholder: "reason", class: "small", "aria-label": "Halt reason for shard " + sid });
    return [
      el("button", { type: "button", "aria-label": "Drain shard " + sid, on: { click: () => act(sid, "drain") } }, "Drain"),
      el("button", { type: "button", "aria-label": "Resume shard " + sid, on: { click: () => act(sid, "resume") } }, "Resume"),
      reason,
      el("button", { type: "button", class: "danger", "aria-label": "Halt shard " + sid,
        on: { click: () => act(sid, "halt", { reason: reason.value.trim() || "operator halt from the console" }) } }, "Halt"),
    ];
  }
  function shardRow(s) {
    const sid = s.shard_id;
    const live = seqs.get(sid);
    const seq = Math.max(s.seq ?? 0, live ?? 0);
    return el("tr", { "data-shard-id": sid, "data-status": s.status },
      el("td", { class: "id" }, sid), el("td", { class: "status" }, s.status + (s.draining ? " (draining)" : "")),
      el("td", { class: "id", title: s.node_id || "" }, s.node_id ? s.node_id.slice(0, 10) : "–"),
      el("td", { class: "seq" }, s.seq == null && live == null ? "–" : seq), el("td", {}, s.committed_seq ?? "–"),
      el("td", {}, (s.queue_depth ?? "–") + " / " + (s.gateway_queue_depth ?? 0)), el("td", {}, s.book_size ?? "–"),
      el("td", {}, batchLatency(s)), el("td", {}, (s.recoveries ?? "–") + (s.recovery_s != null ? " (" + ms(s.recovery_s) + ", " + (s.recovery_source || "–") + ")" : "")),
      el("td", {}, haltCell(s)), el("td", {}, actions(s)));
  }
  let shards = [];
  async function loadShards() {
    const r = await api("GET", "/v1/admin/shards");
    if (!r.ok) { flash(problem(r)); return; }
    shards = r.data.items;
    fill($("shards").tBodies[0], shards.map(shardRow), "no shards yet");
    for (const s of shards) if (s.running && !stream.subs.has("book|" + s.shard_id)) stream.subscribe("book", s.shard_id, s.seq ?? null);
    document.body.dataset.ready = "shards";
  }

  let lastDecisions = null;
  async function loadRisk() {
    const r = await api("GET", "/v1/admin/risk/health");
    if (!r.ok) return;
    const h = r.data, st = h.stats || {}, now = Date.now();
    let rate = "–";
    if (st.decisions != null && lastDecisions && st.replica === lastDecisions.replica)
      rate = ((st.decisions - lastDecisions.n) / ((now - lastDecisions.t) / 1000)).toFixed(1) + " /s";
    if (st.decisions != null) lastDecisions = { n: st.decisions, t: now, replica: st.replica };
    const kv = [["Status", h.status + (h.detail ? " · " + h.detail : "")], ["Application", h.app_status || "–"],
      ["Replicas", h.replicas ? Object.entries(h.replicas).map(([d, n]) => d + ": " + n).join(", ") : (st.replica || "–")],
      ["Deployments", h.deployments ? Object.entries(h.deployments).map(([d, s]) => d + " " + s).join(", ") : "–"],
      ["Breaker (ML tier)", h.breaker_state || "–"], ["Model versions", st.model_versions ? JSON.stringify(st.model_versions) : "–"],
      ["Decisions", st.decisions ?? "–"], ["Decisions/s", rate]];
    $("risk").replaceChildren(...kv.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }
  async function loadRejects() {
    const r = await api("GET", "/v1/admin/rejects?minutes=15");
    if (!r.ok) return;
    fill($("rejects").tBodies[0], r.data.items.map((x) => el("tr", { "data-reason": x.reason },
      el("td", {}, x.reason), el("td", { class: "id" }, x.shard_id), el("td", {}, x.count))), "no rejections in the last 15 min");
  }

  // later read models add a panel here: {id, title, path, render(data) -> Node}; shown only
  // when its endpoint answers (e.g. projector lag, contracts, invoices once they exist)
  const PANELS = [];
  async function loadPanels() {
    for (const p of PANELS) {
      const r = await api("GET", p.path);
      let box = $(p.id);
      if (!r.ok) { if (box) box.remove(); continue; }
      if (!box) { box = el("div", { id: p.id, class: "card" }); $("extra-panels").append(box); }
      box.replaceChildren(el("h2", {}, p.title), p.render(r.data));
    }
  }

  const renderSeq = TD.throttle(() => {
    for (const tr of $("shards").tBodies[0].rows) {
      const sid = tr.dataset.shardId, live = seqs.get(sid);
      if (sid && live != null) tr.querySelector(".seq").textContent = live;
    }
  }, 250);
  const stream = new TD.Stream((m) => { seqs.set(m.shard_id, Math.max(seqs.get(m.shard_id) || 0, m.seq)); renderSeq(); });
  every(5000, loadShards);
  every(5000, loadRisk);
  every(5000, loadRejects);
  every(10000, loadPanels);
})();
