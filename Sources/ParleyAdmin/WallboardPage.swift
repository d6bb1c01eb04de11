/// The wallboard (`GET /`): one page with its style and script inline, nothing loaded from
/// outside Parley. It reads the summaries once (`/v1/queues`, `/v1/agents`), then follows the
/// event stream (`queue.update`, `agent.state`, and a reload of the summaries on `resync`), says
/// when it last heard from Parley, and reconnects by itself. Every value from the API is put on
/// the page as text, never as markup.
enum WallboardPage {
    static func html(nonce: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Parley wallboard</title>
        <style>
        :root { color-scheme: dark; --bg: #10141a; --tile: #1b222c; --text: #e8edf3; --dim: #8a96a8;
                --good: #1f9d55; --warn: #d4a017; --bad: #d64545; --busy: #3b82f6; --ring: #a855f7; --off: #4b5563; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.3 system-ui, sans-serif; background: var(--bg); color: var(--text); }
        header { display: flex; justify-content: space-between; align-items: baseline; padding: 12px 20px; }
        h1 { font-size: 22px; margin: 0; } #status { color: var(--dim); } #status.stale { color: var(--bad); font-weight: 600; }
        main { padding: 0 20px 20px; }
        #queues { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 14px; }
        .tile { background: var(--tile); border-radius: 10px; padding: 14px; border-top: 6px solid var(--off); }
        .tile.good { border-top-color: var(--good); } .tile.warn { border-top-color: var(--warn); } .tile.bad { border-top-color: var(--bad); }
        .tile h2 { margin: 0 0 6px; font-size: 20px; text-transform: capitalize; }
        .big { display: flex; gap: 18px; } .big div { font-size: 13px; color: var(--dim); } .big b { display: block; font-size: 30px; color: var(--text); }
        .line { font-size: 14px; color: var(--dim); margin-top: 6px; }
        .callers { margin-top: 8px; font-size: 14px; } .callers div { display: flex; justify-content: space-between; }
        h3 { margin: 22px 0 8px; font-size: 18px; }
        #agents { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
        .agent { background: var(--tile); border-radius: 8px; padding: 10px; border-left: 6px solid var(--off); }
        .agent.available { border-left-color: var(--good); } .agent.ringing { border-left-color: var(--ring); }
        .agent.busy { border-left-color: var(--busy); } .agent.wrapup { border-left-color: var(--warn); }
        .agent.break { border-left-color: var(--bad); } .agent b { font-size: 17px; }
        .agent .state { text-transform: uppercase; font-size: 12px; letter-spacing: .05em; color: var(--dim); }
        </style></head>
        <body>
        <header><h1>Parley wallboard</h1><span id="status">connecting…</span></header>
        <main><div id="queues"></div><h3>Agents</h3><div id="agents"></div></main>
        <script nonce="\(nonce)">
        "use strict";
        const token = new URLSearchParams(location.search).get("token") || "";
        const queues = new Map(), agents = new Map();
        let lastHeard = 0, source = null;
        function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e; }
        function dur(ms) { if (ms == null || ms < 0) return "-"; const s = Math.floor(ms / 1000); const m = Math.floor(s / 60);
          return m >= 60 ? Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") : m + ":" + String(s % 60).padStart(2, "0"); }
        function level(q) { const t = q.today; if (!t || t.service_level == null) return q.waiting > 0 ? "warn" : "good";
          return t.service_level >= 0.8 ? "good" : t.service_level >= 0.6 ? "warn" : "bad"; }
        function renderQueues() {
          const box = document.getElementById("queues"); box.replaceChildren();
          for (const q of [...queues.values()].sort((a, b) => a.name.localeCompare(b.name))) {
            const t = el("div", "tile " + level(q)); t.dataset.queue = q.name;
            t.append(el("h2", "", q.name));
            const big = el("div", "big");
            const w = el("div", "", "waiting"); w.prepend(el("b", "waiting", q.waiting));
            const l = el("div", "", "longest"); l.prepend(el("b", "", q.waiting > 0 ? dur(q.longest_wait_ms + (Date.now() - q._at)) : "-"));
            const sl = el("div", "", "service level"); sl.prepend(el("b", "sl", q.today && q.today.service_level != null ? Math.round(q.today.service_level * 100) + "%" : "-"));
            big.append(w, l, sl); t.append(big);
            const a = q.agents || {};
            t.append(el("div", "line", "agents: " + a.available + " available, " + a.ringing + " ringing, " + a.busy + " busy, " + a.wrapup + " wrap-up, " + a.break + " break, " + a.offline + " offline"));
            if (q.today) t.append(el("div", "line", "today: " + q.today.offered + " offered, " + q.today.answered + " answered, " + q.today.abandoned + " abandoned (target " + Math.round(q.today.service_level_threshold_ms / 1000) + " s)"));
            const cs = el("div", "callers");
            for (const c of (q.callers || []).slice(0, 8)) { const r = el("div"); r.append(el("span", "", c.caller + (c.treatment ? " (" + c.treatment + ")" : "")), el("span", "", dur(c.waited_ms + (Date.now() - q._at)))); cs.append(r); }
            t.append(cs); box.append(t);
          }
        }
        function renderAgents() {
          const box = document.getElementById("agents"); box.replaceChildren();
          for (const a of agents.values()) {
            const d = el("div", "agent " + a.state); d.dataset.agent = a.id;
            d.append(el("b", "", a.id), el("div", "state", a.state + (a.reason ? " · " + a.reason : "") + (a.pending ? " → " + a.pending.state : "")));
            d.append(el("div", "line", "for " + dur(Date.now() - a.since_ms)));
            if (a.call) d.append(el("div", "line", (a.call.queue || "call") + " " + dur(Date.now() - a.call.since_ms)));
            d.append(el("div", "line", a.calls_handled + " handled"));
            box.append(d);
          }
        }
        function heard() { lastHeard = Date.now(); }
        async function load() {
          const h = { headers: { Authorization: "Bearer " + token } };
          const [q, a] = await Promise.all([fetch("v1/queues", h), fetch("v1/agents", h)]);
          if (!q.ok || !a.ok) throw new Error("the admin API answered " + q.status + "/" + a.status);
          queues.clear(); for (const x of await q.json()) { x._at = Date.now(); queues.set(x.name, x); }
          agents.clear(); for (const x of await a.json()) agents.set(x.id, x);
          heard(); renderQueues(); renderAgents();
        }
        function connect() {
          if (source) source.close();
          source = new EventSource("v1/events?token=" + encodeURIComponent(token));
          source.onopen = heard;
          source.addEventListener("queue.update", e => { const q = JSON.parse(e.data); q._at = Date.now(); queues.set(q.name, q); heard(); renderQueues(); });
          source.addEventListener("agent.state", e => { const a = JSON.parse(e.data); agents.set(a.id, a); heard(); renderAgents(); });
          source.addEventListener("resync", () => { load().catch(() => {}); });
          source.onmessage = heard;
          source.onerror = () => { if (source.readyState === EventSource.CLOSED) setTimeout(start, 2000); };
        }
        async function start() { try { await load(); connect(); } catch (e) { document.getElementById("status").textContent = String(e.message || e); setTimeout(start, 3000); } }
        setInterval(() => {
          const s = document.getElementById("status"); const ago = lastHeard ? Math.round((Date.now() - lastHeard) / 1000) : null;
          s.textContent = ago == null ? "connecting…" : "heard from Parley " + ago + " s ago";
          s.className = ago != null && ago > 20 ? "stale" : "";
          renderQueues(); renderAgents();
        }, 1000);
        start();
        </script></body></html>
        """
    }
}
