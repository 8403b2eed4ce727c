// The board: reads the API with the token from the page's URL fragment, follows the event
// stream, and redraws. Everything shown is set as text (textContent), never as markup.
"use strict";
(() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("tracker-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  const token = fromHash || sessionStorage.getItem("tracker-token") || "";
  const auth = { Authorization: "Bearer " + token };
  const $ = (id) => document.getElementById(id);

  async function api(path) {
    const r = await fetch("/api/v1" + path, { headers: auth });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : "HTTP " + r.status);
    return j;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function problem(message) {
    const p = $("problem");
    p.hidden = !message;
    p.textContent = message || "";
  }

  let state = { items: [], ready: [], status: null, offset: 0 };
  let open = null; // the item shown in detail
  const serverNow = () => Date.now() + state.offset;

  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d";
  }

  // As the terminal board: green while renewed within a third of the lease, yellow while more
  // than a sixth is left, red after.
  function heat(claim, now) {
    const renewed = Date.parse(claim.renewed_at), expires = Date.parse(claim.expires_at);
    const ttl = expires - renewed, since = now - renewed, left = expires - now;
    if (since <= ttl / 3) return "green";
    if (left > ttl / 6) return "yellow";
    return "red";
  }

  let inflight = false, again = false, timer = null;
  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const [all, ready, status] = await Promise.all([
        api("/items?status=all"), api("/items?ready=true"), api("/status"),
      ]);
      const c = status.live_claims[0];
      const offset = c ? Date.parse(c.claim.renewed_at) + c.heartbeat_age_ms - Date.now() : 0;
      state = { items: all.items, ready: ready.items, status, offset };
      render();
      problem(null);
      if (open !== null) detail(open, false);
    } catch (e) {
      problem("Cannot read the tracker: " + e.message);
    }
    inflight = false;
    if (again) { again = false; refresh(); }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 50); };

  function card(item, meta, cls) {
    const li = el("li", "card " + (cls || ""));
    li.tabIndex = 0;
    li.dataset.num = item.num;
    li.setAttribute("role", "button");
    const t = el("div", "t");
    t.append(el("span", "num", "#" + item.num + " "), document.createTextNode(item.title));
    li.append(t);
    const m = el("div", "m");
    for (const part of meta) m.append(part);
    li.append(m);
    return li;
  }

  function badges(item) {
    const out = [el("span", "badge", "P" + item.priority)];
    if (item.type && item.type !== "task") out.push(el("span", "badge", item.type));
    for (const l of item.labels || []) out.push(el("span", "badge", l));
    return out;
  }

  function fill(id, cards) {
    const ol = $("col-" + id);
    const top = ol.scrollTop;
    ol.replaceChildren(...cards);
    ol.scrollTop = top;
    $("n-" + id).textContent = String(cards.length);
  }

  function render() {
    const focused = document.activeElement && document.activeElement.dataset
      ? [document.activeElement.closest("ol") && document.activeElement.closest("ol").id, document.activeElement.dataset.num] : [];
    const now = serverNow();
    const { items, ready, status } = state;
    const readyNums = new Set(ready.map((i) => i.num));
    fill("ready", ready.map((i) => card(i, badges(i))));
    const claimed = items.filter((i) => i.claim).map((i) => {
      const h = heat(i.claim, now);
      const hb = el("span", "hb " + h, "♥ " + age(now - Date.parse(i.claim.renewed_at)) + " ago");
      const meta = [el("span", "holder", i.claim.holder + " "), hb,
        el("span", "left", " · " + age(Date.parse(i.claim.expires_at) - now) + " left")];
      return card(i, meta, h);
    });
    const stale = (status.stale_claims || []).map((s) => {
      const meta = [el("span", "badge stale", "stale"), el("span", "holder", s.claim.holder + " "),
        el("span", "hb red", "♥ " + age(now - Date.parse(s.claim.renewed_at)) + " ago")];
      return card(s, meta, "stale");
    });
    fill("claimed", claimed.concat(stale));
    const blocked = items.filter((i) => i.status === "open" && !i.claim && !readyNums.has(i.num));
    fill("blocked", blocked.map((i) => {
      const waits = (i.blocked_by || []).map((n) => "#" + n).join(" ");
      return card(i, [el("span", "", waits ? "waits for " + waits : "waits for its children")]);
    }));
    const done = items.filter((i) => i.status === "done")
      .sort((a, b) => b.updated_at.localeCompare(a.updated_at)).slice(0, 20);
    fill("done", done.map((i) => card(i, [el("span", "", "done " + age(now - Date.parse(i.updated_at)) + " ago")])));
    epics(items);
    $("counts").textContent = `${status.open} open · ${status.ready} ready · ${status.claimed} claimed · ${status.blocked} blocked · ${status.done} done`;
    if (focused[0]) {
      const again = document.querySelector(`#${focused[0]} [data-num="${Number(focused[1])}"]`);
      if (again) again.focus();
    }
  }

  function epics(items) {
    const list = items.filter((i) => i.type === "epic" && i.status === "open");
    $("epics").hidden = list.length === 0;
    $("epic-list").replaceChildren(...list.map((e) => {
      const kids = items.filter((i) => i.parent === e.num);
      const closed = kids.filter((i) => i.status !== "open").length;
      const li = card(e, [el("span", "", `${closed}/${kids.length} closed`)]);
      const bar = el("progress");
      bar.max = Math.max(1, kids.length);
      bar.value = closed;
      li.append(bar);
      return li;
    }));
  }

  async function detail(num, focus) {
    try {
      const [item, log] = await Promise.all([api("/items/" + num), api("/log?item=" + num)]);
      open = num;
      $("d-title").textContent = "#" + item.num + " " + item.title;
      const meta = [item.status, "priority " + item.priority, "version " + item.version];
      if (item.claim) meta.push("claimed by " + item.claim.holder + ", token " + item.claim.token);
      if ((item.blocked_by || []).length) meta.push("waits for " + item.blocked_by.map((n) => "#" + n).join(" "));
      if ((item.labels || []).length) meta.push("labels " + item.labels.join(", "));
      $("d-meta").textContent = meta.join(" · ");
      $("d-body").textContent = item.body || "(no body)";
      $("d-comments").replaceChildren(...(item.comments || []).map((c) => el("li", "", `${c.author} (${c.at}): ${c.text}`)));
      if (!(item.comments || []).length) $("d-comments").replaceChildren(el("li", "", "(none)"));
      $("d-log").replaceChildren(...log.ops.slice(-30).map((o) => el("li", "", `${o.at} ${o.actor} ${o.op} (v${o.version_after})`)));
      $("detail").hidden = false;
      if (focus) $("d-close").focus();
    } catch (e) {
      problem("Cannot show #" + num + ": " + e.message);
    }
  }

  function close() {
    $("detail").hidden = true;
    const num = open;
    open = null;
    const back = document.querySelector(`[data-num="${Number(num)}"]`);
    if (back) back.focus();
  }

  document.addEventListener("click", (e) => {
    const c = e.target.closest(".card");
    if (c) detail(Number(c.dataset.num), true);
  });
  $("d-close").addEventListener("click", close);
  document.addEventListener("keydown", (e) => {
    const c = e.target.closest && e.target.closest(".card");
    if (e.key === "Escape" && open !== null) { close(); e.preventDefault(); return; }
    if (c && (e.key === "Enter" || e.key === " ")) { detail(Number(c.dataset.num), true); e.preventDefault(); return; }
    if (c && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      const next = e.key === "ArrowDown" ? c.nextElementSibling : c.previousElementSibling;
      if (next) next.focus();
      e.preventDefault();
      return;
    }
    if (c && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      const cols = [...document.querySelectorAll("#columns ol")];
      let i = cols.indexOf(c.closest("ol"));
      do { i += e.key === "ArrowRight" ? 1 : -1; } while (cols[i] && !cols[i].firstElementChild);
      if (cols[i]) cols[i].firstElementChild.focus();
      e.preventDefault();
      return;
    }
    if (e.key === "r" && !e.ctrlKey && !e.metaKey && e.target.tagName !== "INPUT") refresh();
  });

  function live(on) {
    $("live").className = on ? "online" : "offline";
    $("live").textContent = on ? "live" : "reconnecting…";
  }

  // The event stream, read through fetch (EventSource cannot send the token in a header).
  async function follow() {
    for (;;) {
      try {
        const r = await fetch("/api/v1/events", { headers: auth });
        if (!r.ok) throw new Error("HTTP " + r.status);
        live(true);
        soon();
        const reader = r.body.getReader();
        const text = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += text.decode(value, { stream: true });
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            if (/^event: ?op$/m.test(block)) soon();
          }
        }
      } catch (e) {
        // Reconnects below.
      }
      live(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  if (!token) problem("No token: open the URL `tracker serve` printed (it ends in #token=...).");
  refresh();
  follow();
  // Ages and times left move on between changes.
  setInterval(() => { if (state.status) render(); }, 1000);
  // Leases expire and holders vanish without an op: look again now and then.
  setInterval(refresh, 15000);
})();
