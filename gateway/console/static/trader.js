// Trader page: depth ladder and chart, trades tape, last/VWAP against the Agmarknet reference,
// my orders (amend, cancel), proposals (accept, reject), my allocations (why), search.
"use strict";
(async () => {
  const { api, kg, price, paise, el, row, fill, flash, problem, throttle } = TD;
  const me = await TD.whoami();
  if (!me) return;
  const $ = (id) => document.getElementById(id);
  const state = { shard: null, trades: [], reference: null, orders: [] };
  const parts = (sid) => { const i = sid.lastIndexOf("."); return [sid.slice(0, i), sid.slice(i + 1)]; };
  const mkt = () => { const [r, c] = parts(state.shard); return "/v1/market/" + encodeURIComponent(r) + "/" + encodeURIComponent(c); };

  // --- depth ----------------------------------------------------------------------------------
  async function loadDepth() {
    if (!state.shard) return;
    const r = await api("GET", mkt() + "/depth?levels=20");
    if (!r.ok) { flash(problem(r)); return; }
    const d = r.data, n = Math.max(d.bids.length, d.asks.length), rows = [];
    for (let i = 0; i < n; i++) {
      const b = d.bids[i] || [], a = d.asks[i] || [];
      rows.push(el("tr", { "data-level": i },
        el("td", {}, b[2] ?? ""), el("td", { class: "bid" }, b.length ? kg(b[1]) : ""), el("td", { class: "bid" }, b.length ? paise(b[0]) : ""),
        el("td", { class: "ask" }, a.length ? paise(a[0]) : ""), el("td", { class: "ask" }, a.length ? kg(a[1]) : ""), el("td", {}, a[2] ?? "")));
    }
    fill($("ladder").tBodies[0], rows, "no public orders");
    $("best-bid").textContent = d.bids.length ? price(d.bids[0][0]) + " · " + kg(d.bids[0][1]) : "–";
    $("best-ask").textContent = d.asks.length ? price(d.asks[0][0]) + " · " + kg(d.asks[0][1]) : "–";
    const crossed = d.bids.length && d.asks.length && d.bids[0][0] > d.asks[0][0];
    $("crossed-note").open = !!crossed;
    $("depth-seq").textContent = "as of shard seq " + d.seq + (crossed ? " · best bid above best ask: see the note above" : "");
    drawChart(d);
  }
  function cumulative(levels) {
    let acc = 0; const x = [], y = [];
    for (const [p, q] of levels) { acc += q; x.push(p); y.push(acc / 1000); }
    if (x.length) { x.push(x[x.length - 1] + Math.sign(x[x.length - 1] - x[0] || 1) * Math.max(10, Math.abs(x[x.length - 1] - x[0]) * 0.05)); y.push(acc / 1000); }
    return { x, y };
  }
  // plotly.js (4.8 MB) loads async: the ladder and the rest never wait for it
  let lastDepth = null;
  const plotlyTag = document.getElementById("plotly-js");
  if (plotlyTag) plotlyTag.addEventListener("load", () => { if (lastDepth) drawChart(lastDepth); });
  function drawChart(d) {
    lastDepth = d;
    if (!window.Plotly) return;
    const b = cumulative(d.bids), a = cumulative(d.asks);
    Plotly.react($("depth-chart"), [
      { x: b.x, y: b.y, name: "bids (requirements)", type: "scatter", mode: "lines", line: { shape: "hv", color: "#1a7f37" }, fill: "tozeroy" },
      { x: a.x, y: a.y, name: "asks (availabilities)", type: "scatter", mode: "lines", line: { shape: "hv", color: "#cf222e" }, fill: "tozeroy" },
    ], { margin: { t: 10, r: 10, b: 45, l: 55 }, height: 280, xaxis: { title: { text: "price, paise/kg (= Rs/quintal)" } },
         yaxis: { title: { text: "cumulative open, t" } }, legend: { orientation: "h", y: 1.1 } },
       { displayModeBar: false, responsive: true });
  }

  // --- trades, last, VWAP, reference ----------------------------------------------------------
  function renderTrades() {
    fill($("trades").tBodies[0], state.trades.slice(0, 50).map((t) =>
      el("tr", { "data-seq": t.seq }, el("td", {}, TD.time(t.ts)), el("td", {}, kg(t.quantity_kg)), el("td", {}, price(t.price)), el("td", {}, t.seq))), "no trades yet");
    const last = state.trades[0];
    $("last-price").textContent = last ? price(last.price) : "–";
    let q = 0, v = 0;
    for (const t of state.trades) { q += t.quantity_kg; v += t.quantity_kg * t.price; }
    const vwap = q ? Math.round(v / q) : null;
    $("vwap").textContent = vwap == null ? "–" : price(vwap) + " over " + kg(q);
    const ref = state.reference && state.reference.modal;
    $("vwap-vs-ref").textContent = vwap != null && ref ? TD.pct((vwap / ref - 1) * 100) : "–";
  }
  async function loadTrades() {
    const r = await api("GET", mkt() + "/trades?limit=200");
    if (r.ok) { state.trades = r.data.items; renderTrades(); }
  }
  async function loadReference() {
    const r = await api("GET", mkt() + "/reference");
    state.reference = r.ok ? r.data : null;
    const ref = state.reference;
    $("reference").textContent = ref && ref.modal ? price(ref.modal) : "no Agmarknet data for this state";
    $("reference-note").textContent = ref && ref.modal ? "price bands' reference: low median of " + ref.samples + " modal prices over the " + ref.window_days + " days to " + ref.day + "; that day " + ref.markets + " market rows, range " + paise(ref.low) + "–" + paise(ref.high) : "";
  }

  // --- my orders ------------------------------------------------------------------------------
  async function loadOrders() {
    if (!me.party_id) return;
    const [region, commodity] = parts(state.shard);
    const r = await api("GET", "/v1/orders?limit=500&region=" + encodeURIComponent(region) + "&commodity=" + encodeURIComponent(commodity));
    if (!r.ok) { flash(problem(r)); return; }
    state.orders = r.data.items.filter((o) => o.shard_id === undefined || o.shard_id === state.shard).reverse();
    fill($("my-orders").tBodies[0], state.orders.slice(0, 100).map(orderRow), "no orders in this market");
    loadProposals();
  }
  function orderRow(o) {
    const live = o.status === "OPEN" || o.status === "PARTIALLY_FILLED";
    const id = o.order_id;
    const actions = [];
    if (live) {
      const p = el("input", { type: "number", min: 1, step: 1, value: o.price, "aria-label": "New price of order " + id + " (paise/kg)", class: "small" });
      const q = el("input", { type: "number", min: 1, step: 1, value: o.quantity_kg, "aria-label": "New total quantity of order " + id + " (kg)", class: "small" });
      actions.push(p, " paise/kg ", q, " kg ",
        el("button", { type: "button", "aria-label": "Amend order " + id, on: { click: () => amend(id, o, p.value, q.value) } }, "Amend"),
        el("button", { type: "button", "aria-label": "Cancel order " + id, class: "danger", on: { click: () => cancel(id) } }, "Cancel"));
    }
    return el("tr", { "data-order-id": id }, el("td", { class: "id" }, o.client_order_id || id), el("td", {}, o.side),
      el("td", { class: "status" }, o.status), el("td", {}, kg(o.open_kg) + " / " + kg(o.quantity_kg)), el("td", {}, price(o.price)),
      el("td", {}, o.visibility || "PUBLIC"), el("td", {}, actions));
  }
  async function amend(id, o, p, q) {
    const body = {};
    if (Number(p) !== o.price) body.price_paise_per_kg = Number(p);
    if (Number(q) !== o.quantity_kg) body.quantity = { value: Number(q), unit: "kg" };
    if (!Object.keys(body).length) { flash("nothing to amend"); return; }
    const r = await api("POST", "/v1/orders/" + encodeURIComponent(id) + "/amend", body);
    flash(r.ok ? "order " + id + " amended" : "amend refused: " + problem(r));
    refreshMine();
  }
  async function cancel(id) {
    const r = await api("POST", "/v1/orders/" + encodeURIComponent(id) + "/cancel");
    flash(r.ok ? "order " + id + " cancelled (" + kg(r.data.cancelled_kg) + ")" : "cancel refused: " + problem(r));
    refreshMine();
  }

  // --- proposals (of my live requirements) ----------------------------------------------------
  async function loadProposals() {
    const mine = state.orders.filter((o) => o.side === "BUY" && (o.intent === "NEGOTIATE" || o.reserved_kg > 0)).slice(0, 20);
    const rows = [];
    for (const o of mine) {
      const r = await api("GET", "/v1/orders/" + encodeURIComponent(o.order_id) + "/proposals");
      if (!r.ok) continue;
      for (const p of r.data.items) rows.push(proposalRow(p));
    }
    fill($("proposals").tBodies[0], rows, "no proposals");
  }
  function proposalRow(p) {
    const id = p.proposal_id, open = p.status === "PROPOSED";
    const act = open ? [
      el("button", { type: "button", "aria-label": "Accept proposal " + id, on: { click: () => decide(id, "accept") } }, "Accept"),
      el("button", { type: "button", "aria-label": "Reject proposal " + id, class: "danger", on: { click: () => decide(id, "reject") } }, "Reject")] : [];
    return el("tr", { "data-proposal-id": id }, el("td", { class: "id" }, id), el("td", {}, kg(p.quantity_kg)), el("td", {}, price(p.price)),
      el("td", {}, p.score == null ? "–" : Number(p.score).toFixed(3)), el("td", {}, p.status), el("td", {}, act));
  }
  async function decide(id, what) {
    const r = await api("POST", "/v1/proposals/" + encodeURIComponent(id) + "/" + what);
    flash(r.ok ? "proposal " + id + ": " + what + "ed" : what + " refused: " + problem(r));
    refreshMine();
  }

  // --- my allocations with the why ------------------------------------------------------------
  function why(a) {
    const parts = [];
    if (a.score != null) parts.push("score " + Number(a.score).toFixed(3));
    for (const [k, v] of Object.entries(a.breakdown || {})) {
      if (typeof v !== "number") continue;  // the profile's name and weights: same for every candidate
      parts.push(k === "distance_km" ? "distance " + v.toFixed(0) + " km" : k + " " + v.toFixed(3));
    }
    if (a.breakdown && a.breakdown.profile) parts.push("profile " + a.breakdown.profile);
    const risk = a.risk || {};
    const reasons = (risk.reasons || []).map((x) => (typeof x === "string" ? x : (x.code || JSON.stringify(x))));
    return el("div", {}, el("div", {}, parts.join(" · ")),
      el("div", { class: "note" }, "risk " + (risk.outcome || risk.decision || "–") + (reasons.length ? ": " + reasons.join(", ") : "") +
        (a.model_versions && Object.keys(a.model_versions).length ? " · models " + JSON.stringify(a.model_versions) : "")));
  }
  async function loadAllocations() {
    if (!me.party_id) return;
    const since = Date.now() - 7 * 24 * 3600 * 1000;
    const r = await api("GET", "/v1/allocations?limit=500&shard_id=" + encodeURIComponent(state.shard) + "&since_ts=" + since);
    if (!r.ok) return;
    fill($("allocations").tBodies[0], r.data.items.slice(-50).reverse().map((a) =>
      el("tr", { "data-allocation-id": a.allocation_id }, el("td", { class: "id" }, a.allocation_id), el("td", {}, a.buyer_id === me.party_id ? "bought" : "sold"),
        el("td", {}, kg(a.quantity_kg)), el("td", {}, price(a.price)), el("td", {}, why(a)))), "no allocations in the last 7 days");
  }

  // --- search ---------------------------------------------------------------------------------
  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const [region, commodity] = parts(state.shard);
    const body = { commodity, quantity: { value: Number($("s-qty").value), unit: "tonne" }, max_price_paise_per_kg: Number($("s-price").value),
      location: { lat: Number($("s-lat").value), lon: Number($("s-lon").value), region }, limit: 20 };
    if ($("s-km").value) body.max_distance_km = Number($("s-km").value);
    const r = await api("POST", "/v1/market/search", body);
    if (!r.ok) { flash("search refused: " + problem(r)); return; }
    fill($("search-results").tBodies[0], r.data.candidates.map((c, i) => row(i + 1, c.order_id, kg(c.open_kg), price(c.price),
      [c.city, c.region].filter(Boolean).join(", "), why(c))), "no lot meets these filters");
  });

  // --- live updates -----------------------------------------------------------------------------
  const refreshDepth = throttle(loadDepth, 250);
  const refreshMine = throttle(() => { loadOrders(); loadAllocations(); }, 500);
  const stream = new TD.Stream((m) => {
    if (m.shard_id !== state.shard) return;
    if (m.channel === "book") refreshDepth();
    else if (m.channel === "trades") {
      if (!state.trades.some((t) => t.seq === m.seq)) state.trades.unshift({ seq: m.seq, ts: m.ts, ...m.payload });
      renderTrades();
    } else if (m.channel === "mine") refreshMine();
  });

  async function select(sid) {
    if (state.shard) for (const ch of ["book", "trades", "mine"]) stream.unsubscribe(ch, state.shard);
    state.shard = sid; state.trades = [];
    sessionStorage.setItem("tradedesk.market", sid);
    await Promise.all([loadReference(), loadDepth(), loadTrades(), loadOrders(), loadAllocations()]);
    stream.subscribe("book", sid); stream.subscribe("trades", sid);
    if (me.party_id) stream.subscribe("mine", sid);
    document.body.dataset.ready = sid;
  }
  const r = await api("GET", "/v1/market");
  const sel = $("market");
  const items = r.ok ? r.data.items : [];
  sel.replaceChildren(...items.map((m) => el("option", { value: m.shard_id }, m.region + " · " + m.commodity + (m.status === "DRAINED" ? " (drained)" : ""))));
  sel.addEventListener("change", () => select(sel.value));
  const wanted = new URLSearchParams(location.search).get("market") || sessionStorage.getItem("tradedesk.market");
  if (items.length) { sel.value = items.some((m) => m.shard_id === wanted) ? wanted : items[0].shard_id; select(sel.value); }
  else flash("no markets yet: place an order to open one");
})();
