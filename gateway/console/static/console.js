// tradedesk console: what every page shares. The API key lives in sessionStorage only and goes
// out as the Authorization header (HTTP) or the stream's first "auth" message (WebSocket).
"use strict";
const TD = (() => {
  const KEY = "tradedesk.apiKey";
  const nf = new Intl.NumberFormat("en-IN");

  const key = () => sessionStorage.getItem(KEY);
  const setKey = (k) => sessionStorage.setItem(KEY, k);
  const signOut = () => { sessionStorage.removeItem(KEY); location.assign("/ui"); };

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + key() };
    const init = { method, headers };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401 && document.body.dataset.page !== "signin") signOut();
    return { ok: r.ok, status: r.status, data };
  }

  // numbers with their units ----------------------------------------------------------------
  const kg = (v) => v == null ? "–" : nf.format(v) + " kg" + (Math.abs(v) >= 1000 ? " (" + nf.format(Math.round(v / 100) / 10) + " t)" : "");
  const price = (p) => p == null ? "–" : nf.format(p) + " paise/kg (Rs " + nf.format(p) + "/quintal)";
  const paise = (p) => p == null ? "–" : nf.format(p);
  const time = (ms) => ms == null ? "–" : new Date(ms).toLocaleTimeString("en-GB");
  const pct = (x) => (x >= 0 ? "+" : "") + x.toFixed(1) + " %";

  // DOM helpers (text only: data never becomes HTML) -----------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const row = (...cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)));
  function fill(tbody, rows, empty) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 12, class: "empty" }, empty || "none"))]));
  }
  function flash(msg) {
    const f = document.getElementById("flash");
    f.textContent = msg; f.hidden = !msg;
    if (msg) setTimeout(() => { if (f.textContent === msg) f.hidden = true; }, 8000);
  }
  const problem = (r) => (r.data && (r.data.detail || r.data.title)) || ("HTTP " + r.status);

  // at most one call per `ms`; the last request inside a window still runs at its end
  function throttle(fn, ms) {
    let last = 0, timer = null;
    return () => {
      const wait = last + ms - Date.now();
      if (wait <= 0 && !timer) { last = Date.now(); fn(); return; }
      if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, Math.max(wait, 0));
    };
  }
  // a periodic refresh, never faster than once a second
  function every(ms, fn) { fn(); return setInterval(fn, Math.max(ms, 1000)); }

  // the live stream: one WebSocket, resubscribed with from_seq after a reconnect ----------------
  class Stream {
    constructor(onEvent) {
      this.onEvent = onEvent; this.subs = new Map(); this.ws = null; this.backoff = 500;
      this.status = document.getElementById("stream-status");
      this.connect();
    }
    setStatus(s) { if (this.status) { this.status.textContent = s; this.status.dataset.state = s; } }
    connect() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream";
      const ws = this.ws = new WebSocket(url);
      this.setStatus("connecting");
      ws.onopen = () => {
        ws.send(JSON.stringify({ op: "auth", token: key() }));
        this.backoff = 500;
        for (const s of this.subs.values()) this.send(s);
      };
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.op === "welcome") this.setStatus("live");
        else if (msg.op === "ping") ws.send(JSON.stringify({ op: "pong" }));
        else if (msg.op === "event") {
          const s = this.subs.get(msg.channel + "|" + msg.shard_id);
          if (s) s.from_seq = msg.seq;
          this.onEvent(msg);
        } else if (msg.op === "error") flash("stream: " + msg.detail);
      };
      ws.onclose = (e) => {
        this.setStatus("offline");
        if (e.code === 4401 || e.code === 1008) { signOut(); return; }
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      };
    }
    send(s) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN)
        this.ws.send(JSON.stringify({ op: "subscribe", channel: s.channel, shard_id: s.shard_id, from_seq: s.from_seq }));
    }
    subscribe(channel, shard_id, from_seq) {
      const s = { channel, shard_id, from_seq: from_seq == null ? null : from_seq };
      this.subs.set(channel + "|" + shard_id, s); this.send(s);
    }
    unsubscribe(channel, shard_id) {
      if (this.subs.delete(channel + "|" + shard_id) && this.ws && this.ws.readyState === WebSocket.OPEN)
        this.ws.send(JSON.stringify({ op: "unsubscribe", channel, shard_id }));
    }
  }

  // sign-in state of a page: who am I, which pages may I see --------------------------------
  const isOps = (roles) => roles.some((r) => r === "operator" || r === "admin");
  const isTrader = (roles) => roles.some((r) => r === "trader" || r === "seller" || r === "buyer");
  async function whoami() {
    if (!key()) { location.assign("/ui"); return null; }
    const r = await api("GET", "/v1/me");
    if (!r.ok) { if (r.status !== 401) flash(problem(r)); return null; }
    const me = r.data;
    document.getElementById("who").textContent = (me.party_id || "staff") + " · " + me.roles.join(", ");
    document.getElementById("nav").hidden = false;
    document.getElementById("nav-trader").hidden = !isTrader(me.roles);
    document.getElementById("nav-operator").hidden = !isOps(me.roles);
    const out = document.getElementById("sign-out");
    out.hidden = false; out.onclick = signOut;
    return me;
  }

  return { key, setKey, signOut, api, kg, price, paise, time, pct, el, row, fill, flash, problem,
           throttle, every, Stream, whoami, isOps, isTrader };
})();
