// giftsync sandbox console: vanilla JS, no build step. Everything shown comes from the
// console's JSON API (giftsync/sandbox/console/server.py), which talks to the twins.
"use strict";

const POLL_MS = 2000;
const state = {
  info: null,
  view: "receipts",
  seen: {},            // view -> Set of ids already shown (to highlight new rows)
  stores: {},          // record id -> store
  customers: {},       // gid -> customer
  outboxIds: new Set(),
  shopifyCards: [],
};

// -- helpers -------------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function money(v, currency) {
  if (v === null || v === undefined || v === "") return "";
  const n = Number(v);
  if (!isFinite(n)) return String(v);
  const s = Math.abs(n).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const sym = (!currency || currency === "USD") ? "$" : currency + " ";
  return (n < 0 ? "−" : "") + sym + s;
}

function when(v) {
  if (!v) return "";
  const d = new Date(v);
  if (isNaN(d)) return String(v);
  const today = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return time;
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  return `${d.getDate()} ${months[d.getMonth()]} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function pill(text, kind) {
  return el("span", { class: "pill " + (kind || ""), text });
}

function statusPill(status) {
  if (!status) return pill("New", "warn");
  const kind = { Done: "ok", Rejected: "bad", Processing: "warn", New: "warn", Active: "ok",
                 Disabled: "bad", Expired: "bad", Online: "ok", Offline: "" }[status] || "";
  return pill(status, kind);
}

function storeName(links) {
  if (!Array.isArray(links)) return "";
  return links.map((id) => (state.stores[id] ? state.stores[id].name : id)).join(", ");
}

function formData(form) {
  const out = {};
  for (const node of form.elements) {
    if (!node.name) continue;
    out[node.name] = node.type === "checkbox" ? node.checked : node.value;
  }
  return out;
}

function showResult(box, status, headline, facts, extra) {
  box.hidden = false;
  box.dataset.status = status;
  box.replaceChildren(el("div", { class: "headline", "data-test": "result-headline", text: headline }));
  if (facts && facts.length) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v, test] of facts) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", { text: k }), el("dd", { "data-test": test || null, text: String(v) }));
    }
    box.append(dl);
  }
  if (extra) box.append(extra);
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// -- info, selects, demo cards ----------------------------------------------------------------
async function loadInfo() {
  const info = await api("GET", "/api/info");
  state.info = info;
  for (const s of info.stores) state.stores[s.id] = s;
  for (const c of info.customers) state.customers[c.id] = c;
  for (const id of ["redeem-store", "request-store"]) {
    const sel = document.getElementById(id);
    sel.replaceChildren(el("option", { value: "", text: "Choose a store…" }),
      ...info.stores.map((s) => el("option", { value: s.id, text: s.name })));
  }
  for (const id of ["buy-customer", "pay-customer"]) {
    const sel = document.getElementById(id);
    sel.replaceChildren(...info.customers.map((c) => el("option", { value: c.email, text: `${c.name} <${c.email}>` })));
  }
  const giftProducts = info.catalogue.filter((p) => p.giftsync || p.gift_card);
  document.getElementById("buy-sku").replaceChildren(...giftProducts.map((p) =>
    el("option", { value: p.sku, text: `${p.title} — ${money(p.price)}${p.gift_card ? " (Shopify gift card)" : ""}` })));
  const goods = info.catalogue.filter((p) => !p.giftsync && !p.gift_card);
  document.getElementById("pay-sku").replaceChildren(...goods.map((p) =>
    el("option", { value: p.sku, text: `${p.title} — ${money(p.price)}` })));

  const strip = document.getElementById("demo-cards");
  strip.replaceChildren(...info.demo_cards.map((c) => {
    const cls = "demo-card" + (c.enabled ? "" : " disabled") + (c.mirrored ? "" : " unmirrored");
    const grouped = c.code.replace(/(.{4})(?=.)/g, "$1 ");
    return el("div", { class: cls, "data-test": "demo-card", "data-last4": c.last4 },
      el("span", { class: "code", "data-test": "demo-code", text: grouped }),
      el("span", { class: "label", text: `${c.label} · ${money(c.initial)} initial` }),
      el("span", { class: "btns" },
        el("button", { type: "button", text: "Redeem", title: "Put this code in the redemption form", onclick: () => useCode("redeem", c.code) }),
        el("button", { type: "button", text: "Balance", title: "Put this code in the balance-check form", onclick: () => useCode("balance", c.code) }),
        el("button", { type: "button", text: "Pay online", title: "Pay for something online with this card", onclick: () => useCode("pay", c.code) })));
  }));

  const links = document.getElementById("twin-links");
  links.replaceChildren("Twins: ",
    ...Object.entries(info.twins).flatMap(([name, url], i) => [i ? " · " : "", el("a", { href: url + "/__sandbox/health", text: `${name} ${url}` })]));
}

function useCode(where, code) {
  const target = { redeem: ["act-redeem", "redeem-code"], balance: ["act-balance", "balance-code"],
                   pay: ["act-online", "pay-code"] }[where];
  selectActionTab(target[0]);
  const input = document.getElementById(target[1]);
  input.value = code;
  input.focus();
}

// -- tabs --------------------------------------------------------------------------------------
function selectActionTab(id) {
  for (const b of document.querySelectorAll("#action-tabs button")) b.classList.toggle("active", b.dataset.tab === id);
  for (const p of document.querySelectorAll(".actions .tabpane")) p.classList.toggle("active", p.id === id);
}

const VIEWS = {
  "receipts": { title: "Receipts", hint: "The ledger giftsync writes in Airtable: one row per action and balance change, newest first." },
  "store-redemptions": { title: "Store Redemptions", hint: "Airtable: what shops submitted, and what giftsync made of it." },
  "card-requests": { title: "Card Requests", hint: "Airtable: new cards requested by shops." },
  "balance-checks": { title: "Balance Checks", hint: "Airtable: balance questions from customers (answered by email)." },
  "gift-cards": { title: "Gift Cards", hint: "Airtable: giftsync's mirror of every card. Shopify holds the money; these balances follow it." },
  "shopify-cards": { title: "Shopify gift cards", hint: "The Shopify store's gift cards — where the money really is." },
  "shopify-orders": { title: "Shopify orders", hint: "Online orders: gift cards bought, and orders paid with gift cards." },
  "outbox": { title: "Emails", hint: "What Klaviyo's flows would send, as each recipient would read it." },
  "daemon": { title: "giftsync log", hint: "The daemon's own log (codes never appear in it) and its lease in the Status table." },
};

function selectView(view) {
  state.view = view;
  for (const b of document.querySelectorAll("#view-tabs button")) b.classList.toggle("active", b.dataset.view === view);
  document.getElementById("view-title").textContent = VIEWS[view].title;
  document.getElementById("view-hint").textContent = VIEWS[view].hint;
  const body = document.getElementById("view-body");
  body.dataset.view = view;
  body.replaceChildren(el("div", { class: "empty", text: "Loading…" }));
  refreshView();
}

// -- table rendering ---------------------------------------------------------------------------
const COLUMNS = {
  "receipts": [
    ["Time", (f, r) => when(f.Time || r.createdTime), "nowrap"],
    ["Activity", (f) => pill(f.Activity || "", f.Activity === "REJECT" || f.Activity === "ALERT" ? "bad" : "")],
    ["Card", (f) => f["Card (masked)"] || "", "mono"],
    ["Amount", (f) => money(f.Amount, f.Currency), "num"],
    ["Balance after", (f) => money(f["Balance After"], f.Currency), "num"],
    ["Channel", (f) => f.Channel || ""],
    ["Store", (f) => storeName(f.Store)],
    ["Source", (f) => f.Source || ""],
    ["Outcome", (f) => f.Outcome || ""],
    ["Details", (f) => f.Details || "", "wrap"],
  ],
  "store-redemptions": [
    ["Submitted", (f, r) => when(r.createdTime), "nowrap"],
    ["Store", (f) => storeName(f.Store)],
    ["Code", (f) => f.Code || "", "mono"],
    ["Amount", (f) => money(f.Amount), "num"],
    ["Staff", (f) => f.Staff || ""],
    ["Status", (f) => statusPill(f.Status)],
    ["Outcome", (f) => f.Outcome || ""],
    ["Balance after", (f) => money(f["Balance After"]), "num"],
    ["Reason", (f) => f.Reason || "", "wrap"],
    ["Emailed", (f) => (f.Notified ? "✓" : "")],
  ],
  "card-requests": [
    ["Submitted", (f, r) => when(r.createdTime), "nowrap"],
    ["Store", (f) => storeName(f.Store)],
    ["Amount", (f) => money(f.Amount), "num"],
    ["Qty", (f) => f.Quantity ?? "", "num"],
    ["Kind", (f) => f.Kind || ""],
    ["Recipient", (f) => [f["Recipient Name"], f["Recipient Email"]].filter(Boolean).join(" · ")],
    ["Purchaser", (f) => (f["Is Gift"] ? [f["Purchaser Name"], f["Purchaser Email"]].filter(Boolean).join(" · ") : "")],
    ["Status", (f) => statusPill(f.Status)],
    ["Outcome", (f) => f.Outcome || ""],
    ["Cards", (f) => (Array.isArray(f.Cards) ? f.Cards.length : ""), "num"],
    ["Reason", (f) => f.Reason || "", "wrap"],
  ],
  "balance-checks": [
    ["Submitted", (f, r) => when(r.createdTime), "nowrap"],
    ["Code", (f) => f.Code || "", "mono"],
    ["Email", (f) => f.Email || ""],
    ["Status", (f) => statusPill(f.Status)],
    ["Outcome", (f) => f.Outcome || ""],
    ["Answered", (f) => when(f["Processed At"]), "nowrap"],
    ["Emailed", (f) => (f.Notified ? "✓" : "")],
  ],
  "gift-cards": [
    ["Card", (f) => f.Card || "", "mono"],
    ["Balance", (f) => money(f.Balance, f.Currency), "num"],
    ["Initial", (f) => money(f["Initial Value"], f.Currency), "num"],
    ["Status", (f) => statusPill(f.Status)],
    ["Kind", (f) => f.Kind || ""],
    ["Source", (f) => f.Source || ""],
    ["Store", (f) => storeName(f.Store)],
    ["Recipient", (f) => f["Recipient Email"] || ""],
    ["Order", (f) => f.Order || ""],
    ["Last synced", (f) => when(f["Last Synced"]), "nowrap"],
  ],
};

function renderTable(view, rows, columns, idOf) {
  const seen = state.seen[view];
  const first = !seen;
  const now = new Set();
  const table = el("table", { "data-test": `table-${view}` },
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { text: c[0] })))));
  const tbody = el("tbody");
  for (const r of rows) {
    const id = idOf(r);
    now.add(id);
    const tr = el("tr", { "data-id": id, class: !first && !seen.has(id) ? "fresh" : null });
    for (const [name, fn, cls] of columns) {
      const v = fn(r.fields || r, r);
      tr.append(el("td", { class: cls || null, "data-col": name }, v));
    }
    tbody.append(tr);
  }
  table.append(tbody);
  state.seen[view] = new Set([...(seen || []), ...now]);
  if (!rows.length) return el("div", { class: "empty", text: "Nothing here yet." });
  return table;
}

function renderShopifyCards(cards) {
  state.shopifyCards = cards;
  updateAdjustSelect(cards);
  const cols = [
    ["Card", (c) => c.maskedCode, "mono"],
    ["Balance", (c) => money(c.balance, c.currency), "num"],
    ["Initial", (c) => money(c.initialValue, c.currency), "num"],
    ["Status", (c) => statusPill(!c.enabled || c.deactivatedAt ? "Disabled" : (c.visible === false ? "Processing" : "Active"))],
    ["Source", (c) => ({ api_client: "app (API)", purchased: "bought online", manual: "admin" }[c.source] || c.source || "")],
    ["Customer", (c) => (c.customer && state.customers[c.customer] ? state.customers[c.customer].email : (c.customer || ""))],
    ["Last change", (c) => {
      const tx = c.transactions || [];
      const t = tx[tx.length - 1];
      return t ? `${money(t.amount, c.currency)} ${t.note ? "· " + t.note : ""}` : "";
    }, "wrap"],
    ["", (c) => el("button", { type: "button", class: "small", "data-test": "adjust-card-button",
                               text: "Adjust…", onclick: () => startAdjust(c.id) })],
  ];
  return renderTable("shopify-cards", cards, cols, (c) => c.id);
}

function renderShopifyOrders(orders) {
  const cols = [
    ["Order", (o) => o.name],
    ["Placed", (o) => when(o.createdAt), "nowrap"],
    ["Customer", (o) => o.email || ""],
    ["Items", (o) => (o.lines || []).map((l) => `${l.quantity} × ${l.title}${l.isGiftCard ? " (gift card)" : ""}`).join("\n"), "wrap"],
    ["Total", (o) => money(o.total, o.currency), "num"],
    ["Paid with gift cards", (o) => (o.transactions || []).filter((t) => t.gateway === "gift_card")
        .map((t) => `${t.kind === "REFUND" ? "refund " : ""}•••• ${(t.receipt && t.receipt.gift_card_last_characters || "").toUpperCase()} ${money(t.amount, o.currency)}`).join("\n"), "wrap"],
    ["Status", (o) => pill((o.financialStatus || "").replace("_", " ").toLowerCase(), o.financialStatus === "PAID" ? "ok" : "")],
    ["Tags", (o) => (o.tags || []).join(", ")],
  ];
  return renderTable("shopify-orders", orders, cols, (o) => o.id);
}

function renderOutbox(emails) {
  if (!emails.length) return el("div", { class: "empty", text: "No emails yet." });
  const first = !state.seen.outbox;
  const seen = state.seen.outbox || new Set();
  const list = el("div", { class: "emails", "data-test": "outbox" });
  for (const m of emails) {
    const fresh = !first && !seen.has(m.id);
    seen.add(m.id);
    list.append(el("article", { class: "email" + (fresh ? " fresh" : ""), "data-test": "email", "data-id": m.id,
                                "data-to": m.to, "data-metric": m.metric },
      el("div", { class: "env" },
        el("span", { class: "k", text: "Subject" }), el("span", { class: "subject", "data-test": "email-subject", text: m.subject }),
        el("time", { text: when(m.time) }),
        el("span", { class: "k", text: "To" }), el("span", { "data-test": "email-to", text: m.to }),
        el("span"),
        el("span", { class: "k", text: "From" }), el("span", { text: "Gift cards <giftcards@example.com>" })),
      el("pre", { class: "body", "data-test": "email-body", text: m.body || "" }),
      el("div", { class: "meta", text: `Klaviyo metric “${m.metric}”${m.error ? " — " + m.error : ""}` })));
  }
  state.seen.outbox = seen;
  return list;
}

function renderDaemon(d) {
  const lease = (d.status || []).find((r) => (r.fields.Name || "").toLowerCase().includes("lease")) || (d.status || [])[0];
  const box = el("div");
  const facts = el("dl", { class: "facts" });
  const add = (k, v) => { if (v) facts.append(el("dt", { text: k }), el("dd", { text: v })); };
  add("Process", d.state + (d.pid ? ` (pid ${d.pid})` : "") + (d.returncode !== null && d.returncode !== undefined ? `, exit code ${d.returncode}` : ""));
  if (lease) {
    const f = lease.fields;
    add("Lease", `${f.State || "?"}${f.Holder ? " — held by " + f.Holder : ""}`);
    add("Heartbeat", when(f.Heartbeat));
    add("Lease until", when(f["Lease Until"]));
  }
  for (const r of d.status || []) {
    if (r === lease) continue;
    add(r.fields.Name || r.id, [r.fields["Last Run"] ? "last run " + when(r.fields["Last Run"]) : "", r.fields.Details || ""].filter(Boolean).join(" · "));
  }
  if (d.simulator) add("Simulator", d.simulator);
  box.append(el("div", { class: "result", "data-status": d.state === "running" ? "ok" : "error" }, facts));
  box.append(el("pre", { class: "log", "data-test": "daemon-log", text: (d.log || []).join("\n") || "(no output yet)" }));
  return box;
}

// -- polling -----------------------------------------------------------------------------------
let refreshing = false;
async function refreshView() {
  if (refreshing) return;
  refreshing = true;
  const view = state.view;
  const body = document.getElementById("view-body");
  try {
    let node;
    if (COLUMNS[view]) {
      const data = await api("GET", `/api/airtable/${view}`);
      node = renderTable(view, data.records, COLUMNS[view], (r) => r.id);
    } else if (view === "shopify-cards") {
      node = renderShopifyCards((await api("GET", "/api/shopify/cards")).cards);
    } else if (view === "shopify-orders") {
      node = renderShopifyOrders((await api("GET", "/api/shopify/orders")).orders);
    } else if (view === "outbox") {
      node = renderOutbox((await api("GET", "/api/outbox")).emails);
    } else if (view === "daemon") {
      node = renderDaemon(await api("GET", "/api/daemon"));
    }
    if (state.view === view && node) {
      body.replaceChildren(node);
      document.getElementById("view-updated").textContent = "updated " + new Date().toLocaleTimeString();
    }
  } catch (e) {
    if (state.view === view) document.getElementById("view-updated").textContent = "⚠ " + e.message;
  } finally {
    refreshing = false;
  }
}

async function refreshDaemon() {
  const box = document.getElementById("daemon-status");
  const text = document.getElementById("daemon-text");
  try {
    const d = await api("GET", "/api/daemon");
    box.dataset.state = d.state;
    const lease = (d.status || []).find((r) => r.fields.Holder);
    if (d.state === "running") text.textContent = `giftsync is running${lease && lease.fields.State === "Online" ? " · holds the lease" : ""}`;
    else if (d.state === "stopped") text.textContent = `giftsync stopped (exit code ${d.returncode}) — see Log`;
    else text.textContent = "giftsync is not running";
  } catch (e) {
    box.dataset.state = "unknown";
    text.textContent = "console: " + e.message;
  }
}

async function refreshOutboxCount() {
  try {
    const data = await api("GET", "/api/outbox");
    document.getElementById("outbox-count").textContent = data.emails.length;
    return data.emails;
  } catch (e) { return null; }
}

// -- following a submitted form record ------------------------------------------------------------
async function followRecord(slug, id, box, render, emailMatch, before, prefer) {
  const started = Date.now();
  let rec = null;
  let email = null;
  while (Date.now() - started < 10 * 60 * 1000) {
    try {
      rec = await api("GET", `/api/airtable/${slug}/${id}`);
      const f = rec.fields || {};
      const finished = f.Status === "Done" || f.Status === "Rejected";
      if (finished && emailMatch && !email) {
        const emails = (await api("GET", "/api/outbox")).emails;
        const fresh = emails.filter((m) => !before.has(m.id) && emailMatch(m, f));
        email = (prefer && fresh.find(prefer)) || fresh[fresh.length - 1] || null;
      }
      render(f, email);
      if (finished && (!emailMatch || email || Date.now() - started > 120000)) return;
    } catch (e) {
      // keep waiting through a busy moment (rate limits); show the last state
    }
    await sleep(1000);
  }
}

function emailNote(email, waitingText) {
  if (!email) return el("p", { class: "hint", "data-test": "result-email-waiting", text: waitingText });
  return el("div", { class: "email", "data-test": "result-email", "data-to": email.to, style: "margin-top:10px;background:#fff" },
    el("div", { class: "env" },
      el("span", { class: "k", text: "Email to" }), el("span", { "data-test": "email-to", text: email.to }), el("span"),
      el("span", { class: "k", text: "Subject" }), el("span", { class: "subject", "data-test": "email-subject", text: email.subject }), el("span")),
    el("pre", { class: "body", "data-test": "email-body", text: email.body }));
}

async function snapshotOutbox() {
  try { return new Set((await api("GET", "/api/outbox")).emails.map((m) => m.id)); }
  catch (e) { return new Set(); }
}

function waitingText() {
  return "Submitted to Airtable. Waiting for giftsync to process it (it checks every few seconds)…";
}

// -- forms ---------------------------------------------------------------------------------------
function bindForm(formId, resultId, handler) {
  const form = document.getElementById(formId);
  const box = document.getElementById(resultId);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await handler(formData(form), box, form);
    } catch (e) {
      showResult(box, "error", (form.dataset.kind === "shopify" ? "Refused: " : "Not submitted: ") + e.message);
    } finally {
      button.disabled = false;
    }
  });
}

function setupForms() {
  bindForm("redeem-form", "redeem-result", async (data, box, form) => {
    const before = await snapshotOutbox();
    const storeEmail = (state.stores[data.store] || {}).email || "";
    const typed = data.code.replace(/[\s-]/g, "").toUpperCase();
    const rec = await api("POST", "/api/forms/store-redemption", data);
    box.dataset.record = rec.id;
    showResult(box, "waiting", waitingText(), [["Record", rec.id, "result-record"]]);
    form.reset();
    followRecord("store-redemptions", rec.id, box, (f, email) => {
      const done = f.Status === "Done" || f.Status === "Rejected";
      const headline = done ? (f.Outcome || f.Status) : (f.Status === "Processing" ? "giftsync is processing it…" : waitingText());
      showResult(box, done ? f.Status : "waiting", headline, [
        ["Outcome", f.Outcome, "result-outcome"],
        ["Card", f.Code, "result-card"],
        ["Amount", money(f.Amount), "result-amount"],
        ["Balance after", money(f["Balance After"]), "result-balance"],
        ["Reason", f.Reason, "result-reason"],
        ["Record", rec.id, "result-record"],
      ], done ? emailNote(email, `Waiting for the email to ${storeEmail}…`) : null);
    }, (m) => m.to.toLowerCase() === storeEmail.toLowerCase() && m.metric === "Store Redemption Processed", before,
       (m) => (m.subject + m.body).toUpperCase().includes(typed.slice(-4)));
  });

  bindForm("request-form", "request-result", async (data, box, form) => {
    const before = await snapshotOutbox();
    const storeEmail = (state.stores[data.store] || {}).email || "";
    const rec = await api("POST", "/api/forms/card-request", data);
    showResult(box, "waiting", waitingText(), [["Record", rec.id, "result-record"]]);
    form.reset();
    toggleRequestFields();
    followRecord("card-requests", rec.id, box, (f, email) => {
      const done = f.Status === "Done" || f.Status === "Rejected";
      showResult(box, done ? f.Status : "waiting", done ? (f.Outcome || f.Status) : waitingText(), [
        ["Outcome", f.Outcome, "result-outcome"],
        ["Cards created", Array.isArray(f.Cards) ? f.Cards.length : "", "result-cards"],
        ["Reason", f.Reason, "result-reason"],
        ["Record", rec.id, "result-record"],
      ], done ? emailNote(email, `Waiting for the email to ${storeEmail}…`) : null);
    }, (m) => m.to.toLowerCase() === storeEmail.toLowerCase() && m.metric === "Store Card Request Processed", before);
  });

  bindForm("balance-form", "balance-result", async (data, box, form) => {
    const before = await snapshotOutbox();
    const to = (data.email || "").trim().toLowerCase();
    const rec = await api("POST", "/api/forms/balance-check", data);
    showResult(box, "waiting", waitingText(), [["Record", rec.id, "result-record"]]);
    form.reset();
    followRecord("balance-checks", rec.id, box, (f, email) => {
      const done = f.Status === "Done" || f.Status === "Rejected";
      showResult(box, done ? f.Status : "waiting", done ? (f.Outcome || f.Status) : waitingText(), [
        ["Outcome", f.Outcome, "result-outcome"],
        ["Record", rec.id, "result-record"],
      ], done ? emailNote(email, `Waiting for the answer to ${to}…`) : null);
    }, (m) => m.to.toLowerCase() === to, before);
  });

  bindForm("buy-form", "buy-result", async (data, box, form) => {
    const order = await api("POST", "/api/shopify/buy", {
      email: data.email,
      lines: [{ sku: data.sku, quantity: data.quantity, recipient_email: data.recipient_email, recipient_name: data.recipient_name }],
    });
    showResult(box, "ok", `Order ${order.name} placed — ${money(order.total, order.currency)}`, [
      ["Customer", order.email, "result-customer"],
      ["Items", (order.lines || []).map((l) => `${l.quantity} × ${l.title}`).join(", ")],
      ["Next", "giftsync creates the cards and sends the emails on its next Shopify cycle (see Emails)."],
    ]);
  });

  bindForm("pay-form", "pay-result", async (data, box, form) => {
    const order = await api("POST", "/api/shopify/pay", data);
    const paid = (order.transactions || []).filter((t) => t.gateway === "gift_card")
      .reduce((s, t) => s + Number(t.amount), 0);
    showResult(box, "ok", `Order ${order.name} paid — ${money(paid, order.currency)} from the gift card`, [
      ["Total", money(order.total, order.currency), "result-total"],
      ["Next", "giftsync records the payment in Receipts on its next Shopify cycle."],
    ]);
    document.getElementById("pay-code").value = "";
  });

  bindForm("adjust-form", "adjust-result", async (data, box, form) => {
    const card = await api("POST", "/api/shopify/adjust", data);
    showResult(box, "ok", `Balance of ${card.maskedCode} is now ${money(card.balance, card.currency)} in Shopify`, [
      ["Next", "giftsync notices the change and writes an ADJUST receipt."],
    ]);
  });

  document.getElementById("request-kind").addEventListener("change", toggleRequestFields);
  document.getElementById("request-is-gift").addEventListener("change", toggleRequestFields);
}

function toggleRequestFields() {
  document.getElementById("request-serials-label").hidden = document.getElementById("request-kind").value !== "Physical";
  document.getElementById("request-purchaser").hidden = !document.getElementById("request-is-gift").checked;
}

function updateAdjustSelect(cards) {
  const sel = document.getElementById("adjust-card");
  const current = sel.value;
  sel.replaceChildren(el("option", { value: "", text: "Choose a card…" }),
    ...cards.map((c) => el("option", { value: c.id, text: `${c.maskedCode} — ${money(c.balance, c.currency)}` })));
  if (current) sel.value = current;
}

async function startAdjust(id) {
  selectActionTab("act-online");
  document.querySelector("#act-online details:last-of-type").open = true;
  if (!state.shopifyCards.length) updateAdjustSelect((await api("GET", "/api/shopify/cards")).cards);
  document.getElementById("adjust-card").value = id;
  document.getElementById("adjust-amount").focus();
}

// -- start ----------------------------------------------------------------------------------------
async function main() {
  for (const b of document.querySelectorAll("#action-tabs button")) b.addEventListener("click", () => selectActionTab(b.dataset.tab));
  for (const b of document.querySelectorAll("#view-tabs button")) b.addEventListener("click", () => selectView(b.dataset.view));
  setupForms();
  try {
    await loadInfo();
  } catch (e) {
    document.getElementById("daemon-text").textContent = "console: " + e.message;
  }
  try { updateAdjustSelect((await api("GET", "/api/shopify/cards")).cards); } catch (e) { /* later */ }
  selectView("receipts");
  refreshDaemon();
  refreshOutboxCount();
  setInterval(refreshView, POLL_MS);
  setInterval(refreshDaemon, 3000);
  setInterval(refreshOutboxCount, 3000);
  document.body.dataset.ready = "true";
}

main();
