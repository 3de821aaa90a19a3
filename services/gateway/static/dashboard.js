// The risk dashboard: plain JavaScript over the gateway's /info and /ws, no build step.
// Every number is shown as the API's decimal string; nothing is computed here that the
// venue computes (what-if and distances to liquidation come from /info whatIf).
"use strict";

(() => {
  const FEED_LIMIT = 50;
  // /info weighs 20 per request against the IP's 1200 a minute (docs/gateway-auth.md):
  // the venue poll and the distance refresh together stay under 900 a minute
  const VENUE_POLL_MS = 5000;
  const DISTANCE_MIN_MS = 2000;
  const PING_MS = 20000;
  const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

  const $ = (id) => document.getElementById(id);
  const state = {
    ws: null,
    subs: new Map(), // key -> subscription, resent on every (re)connect
    user: null,
    markets: [],
    marks: {}, // coin -> mark as the venue last reported it
    distances: {}, // coin -> distance to liquidation (percent) at the current marks
    lastAccount: null,
    scenariosShown: false,
    distanceTimer: null,
  };

  const time = (ms) => new Date(ms).toISOString().slice(11, 19);
  const short = (address) => address.slice(0, 6) + "…" + address.slice(-4);

  function element(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }

  function row(cells, attrs) {
    const tr = element("tr", null, attrs);
    for (const cell of cells) {
      const td = element("td", cell.text, cell.attrs);
      if (cell.className) td.className = cell.className;
      tr.appendChild(td);
    }
    return tr;
  }

  function prepend(list, item) {
    list.insertBefore(item, list.firstChild);
    while (list.children.length > FEED_LIMIT) list.removeChild(list.lastChild);
  }

  async function info(body) {
    const response = await fetch("/info", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok || (data && data.status === "err")) {
      throw new Error(data && data.response ? data.response : response.statusText);
    }
    return data;
  }

  // ------------------------------------------------------------------ WebSocket

  function setConnection(text) {
    const badge = $("connection");
    badge.textContent = text;
    badge.dataset.state = text;
  }

  function send(message) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
  }

  function subscribe(subscription) {
    const key = JSON.stringify(subscription);
    if (state.subs.has(key)) return;
    state.subs.set(key, subscription);
    send({ method: "subscribe", subscription });
  }

  function unsubscribe(subscription) {
    const key = JSON.stringify(subscription);
    if (!state.subs.delete(key)) return;
    send({ method: "unsubscribe", subscription });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws");
    state.ws = ws;
    ws.onopen = () => {
      setConnection("open");
      for (const subscription of state.subs.values()) send({ method: "subscribe", subscription });
    };
    ws.onclose = () => {
      setConnection("closed");
      setTimeout(connect, 1000);
    };
    ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  }

  function onMessage(msg) {
    const data = msg.data;
    switch (msg.channel) {
      case "trades":
        for (const trade of data) showTrade(trade);
        break;
      case "liquidations":
        for (const step of data.events) showLiquidation(step);
        break;
      case "activeAssetCtx":
        showContext(data.coin, data.ctx);
        break;
      case "clearinghouseState":
        if (data.user === state.user) showAccount(data.clearinghouseState);
        break;
      case "notification":
        prepend($("notifications"), element("li", time(Date.now()) + " " + data.notification));
        break;
      case "error":
        console.warn("gateway:", data);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ venue

  function showTrade(t) {
    const side = t.side === "B" ? "buy" : "sell";
    const text = `${time(t.time)} ${t.coin} ${side} ${t.sz} @ ${t.px}`;
    prepend(
      $("trades"),
      element("li", text, { "data-tid": t.tid, "data-coin": t.coin, "data-px": t.px, "data-sz": t.sz }),
    );
  }

  function showLiquidation(s) {
    const what = s.coin ? ` ${s.coin}${s.sz !== "0.0" ? " " + s.sz + " @ " + s.px : ""}` : "";
    const text =
      `${time(s.time)} ${s.stage} ${short(s.user)}${what} ` +
      `equity ${s.equityBefore} → ${s.equityAfter} (maintenance ${s.maintenance})` +
      (s.detail ? ` ${s.detail}` : "");
    prepend(
      $("liquidations"),
      element("li", text, { "data-user": s.user, "data-stage": s.stage, "data-coin": s.coin }),
    );
  }

  function marketRow(coin) {
    let tr = document.querySelector(`#markets tr[data-coin="${coin}"]`);
    if (!tr) {
      const cells = ["coin", "oracle", "mark", "last", "oracle-status", "state", "funding", "oi"];
      tr = row(cells.map((name) => ({ text: name === "coin" ? coin : "-", className: name })), {
        "data-coin": coin,
      });
      $("markets").tBodies[0].appendChild(tr);
    }
    return tr;
  }

  function setCell(tr, name, text) {
    const cell = tr.querySelector("td." + name);
    if (cell && text !== undefined && text !== null) cell.textContent = text;
  }

  function showContext(coin, ctx) {
    const tr = marketRow(coin);
    setCell(tr, "oracle", ctx.oraclePx);
    setCell(tr, "mark", ctx.markPx);
    setCell(tr, "funding", ctx.funding);
    setCell(tr, "oi", ctx.openInterest);
    state.marks[coin] = ctx.markPx;
  }

  function showVenue(venue) {
    for (const m of venue.markets) {
      const tr = marketRow(m.coin);
      setCell(tr, "oracle", m.oraclePx);
      setCell(tr, "mark", m.markPx);
      setCell(tr, "last", m.lastPx);
      setCell(tr, "oracle-status", m.oracleStatus);
      setCell(tr, "state", m.state);
      setCell(tr, "funding", m.funding);
      setCell(tr, "oi", m.openInterest);
      tr.querySelector("td.oracle-status").className =
        "oracle-status" + (m.oracleStatus === "valid" ? "" : " oracle-invalid");
      state.marks[m.coin] = m.markPx;
    }
    $("insurance-fund").textContent = venue.insuranceFund.accountValue;
    $("backstop-vault").textContent = venue.backstopVault.accountValue;
    if (!state.scenariosShown) {
      state.scenariosShown = true;
      state.markets = venue.markets.map((m) => m.coin);
      for (const name of venue.scenarios) $("scenario").appendChild(element("option", name, { value: name }));
      const prices = $("whatif-prices");
      for (const coin of state.markets) {
        const label = element("label", coin + " ");
        label.appendChild(element("input", null, { id: "price-" + coin, "data-coin": coin, inputmode: "decimal" }));
        prices.appendChild(label);
        subscribe({ type: "trades", coin });
        subscribe({ type: "activeAssetCtx", coin });
      }
    }
    for (const coin of state.markets) {
      const input = $("price-" + coin);
      if (input) input.placeholder = state.marks[coin] || "";
    }
    if (state.lastAccount) showPositions(state.lastAccount);
  }

  async function pollVenue() {
    try {
      showVenue(await info({ type: "venueState" }));
    } catch (err) {
      console.warn("venueState:", err);
    }
    setTimeout(pollVenue, VENUE_POLL_MS);
  }

  // ------------------------------------------------------------------ account

  function showAccount(ch) {
    state.lastAccount = ch;
    $("equity").textContent = ch.marginSummary.accountValue;
    $("margin-used").textContent = ch.marginSummary.totalMarginUsed;
    $("maintenance").textContent = ch.crossMaintenanceMarginUsed;
    $("withdrawable").textContent = ch.withdrawable;
    showPositions(ch);
    refreshDistancesSoon();
  }

  function showPositions(ch) {
    const body = $("positions").tBodies[0];
    body.replaceChildren();
    for (const { position: p } of ch.assetPositions) {
      const distance = state.distances[p.coin];
      body.appendChild(
        row(
          [
            { text: p.coin },
            { text: p.szi, className: "szi" },
            { text: p.entryPx, className: "entry" },
            { text: state.marks[p.coin] || "-", className: "mark" },
            { text: p.positionValue, className: "value" },
            { text: p.unrealizedPnl, className: "upnl" },
            { text: p.liquidationPx === null ? "-" : p.liquidationPx, className: "liq" },
            { text: distance === undefined || distance === null ? "-" : distance + "%", className: "distance" },
          ],
          { "data-coin": p.coin },
        ),
      );
    }
  }

  function refreshDistancesSoon() {
    if (state.distanceTimer) return;
    state.distanceTimer = setTimeout(async () => {
      state.distanceTimer = null;
      if (!state.user) return;
      try {
        const now = await info({ type: "whatIf", user: state.user });
        state.distances = {};
        for (const p of now.positions) state.distances[p.coin] = p.liquidationDistancePct;
        if (state.lastAccount) showPositions(state.lastAccount);
      } catch (err) {
        console.warn("whatIf:", err);
      }
    }, DISTANCE_MIN_MS);
  }

  async function watch(address) {
    $("account-error").textContent = "";
    if (!ADDRESS.test(address)) {
      $("account-error").textContent = "an address is 0x and 40 hex digits";
      return;
    }
    const user = address.toLowerCase();
    if (state.user && state.user !== user) {
      unsubscribe({ type: "clearinghouseState", user: state.user });
      unsubscribe({ type: "notification", user: state.user });
      $("notifications").replaceChildren();
    }
    state.user = user;
    state.distances = {};
    $("address").value = user;
    history.replaceState(null, "", "#" + user);
    subscribe({ type: "clearinghouseState", user });
    subscribe({ type: "notification", user });
    try {
      showAccount(await info({ type: "clearinghouseState", user }));
    } catch (err) {
      $("account-error").textContent = err.message;
    }
  }

  // ------------------------------------------------------------------ what-if

  async function runWhatIf() {
    $("whatif-error").textContent = "";
    if (!state.user) {
      $("whatif-error").textContent = "watch an account first";
      return;
    }
    const body = { type: "whatIf", user: state.user, prices: {} };
    for (const coin of state.markets) {
      const value = $("price-" + coin).value.trim();
      if (value) body.prices[coin] = value;
    }
    const scenario = $("scenario").value;
    if (scenario) body.scenario = scenario;
    let answer;
    try {
      answer = await info(body);
    } catch (err) {
      $("whatif-error").textContent = err.message;
      $("whatif-form").dataset.done = "error";
      return;
    }
    $("whatif-account-value").textContent = answer.accountValue;
    $("whatif-equity").textContent = answer.crossAccountValue;
    $("whatif-initial").textContent = answer.initialMargin;
    $("whatif-maintenance").textContent = answer.maintenanceMargin;
    $("whatif-withdrawable").textContent = answer.withdrawable;
    const status = $("whatif-status");
    status.textContent = answer.liquidated ? "liquidated" : "above maintenance";
    status.className = answer.liquidated ? "bad" : "good";
    const body2 = $("whatif-positions").tBodies[0];
    body2.replaceChildren();
    for (const p of answer.positions) {
      body2.appendChild(
        row(
          [
            { text: p.coin },
            { text: p.szi, className: "szi" },
            { text: p.markPx, className: "mark" },
            { text: p.unrealizedPnl, className: "upnl" },
            { text: p.liquidationPx === null ? "-" : p.liquidationPx, className: "liq" },
            { text: `${p.equity} / ${p.requirement}`, className: "requirement" },
            { text: p.liquidated ? "liquidated" : "safe", className: p.liquidated ? "outcome bad" : "outcome good" },
          ],
          { "data-coin": p.coin, "data-liquidated": String(p.liquidated) },
        ),
      );
    }
    $("whatif-form").dataset.done = String(answer.time);
  }

  // ------------------------------------------------------------------ start

  $("account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    watch($("address").value.trim());
  });
  $("whatif-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runWhatIf();
  });
  setInterval(() => send({ method: "ping" }), PING_MS);
  setInterval(() => {
    $("clock").textContent = new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }, 1000);
  subscribe({ type: "liquidations" });
  connect();
  pollVenue();
  if (ADDRESS.test(location.hash.slice(1))) watch(location.hash.slice(1));
})();
