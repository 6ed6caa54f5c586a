// The trading page: live order book (REST snapshot + diff stream), candle chart (klines + kline stream), market
// trades, and the order form's field switching. No dependencies; the page works without this file.
(function () {
  "use strict";
  var root = document.getElementById("trade");
  if (!root) return;
  var symbol = root.dataset.symbol;
  var stream = root.dataset.stream;

  // -- order form: show the fields of the chosen type; hidden fields are disabled so they are not sent
  var form = document.getElementById("order-form");
  if (form) {
    var typeSelect = form.querySelector("select[name=type]");
    var sync = function () {
      var kind = typeSelect.value;
      form.querySelectorAll("[data-for]").forEach(function (block) {
        var on = block.dataset.for.split(" ").indexOf(kind) >= 0;
        block.hidden = !on;
        block.querySelectorAll("input, select").forEach(function (el) { el.disabled = !on; });
      });
    };
    typeSelect.addEventListener("change", sync);
    sync();
  }

  // -- order book: Binance's local book procedure (buffer diffs, take a snapshot, apply diffs after it)
  var book = { bids: new Map(), asks: new Map(), lastUpdateId: 0, ready: false, buffer: [] };
  var bidsBody = document.getElementById("book-bids");
  var asksBody = document.getElementById("book-asks");
  var spreadCell = document.getElementById("book-spread");

  function num(text) {  // "1.50000000" -> "1.5", as the server-rendered tables show numbers
    return text.indexOf(".") >= 0 ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }
  function row(price, qty, cls) {
    var tr = document.createElement("tr");
    var a = document.createElement("td"); a.className = "num " + cls; a.textContent = num(price);
    var b = document.createElement("td"); b.className = "num"; b.textContent = num(qty);
    tr.appendChild(a); tr.appendChild(b);
    return tr;
  }
  function levels(map, descending) {
    var keys = Array.from(map.keys());
    keys.sort(function (x, y) { return descending ? Number(y) - Number(x) : Number(x) - Number(y); });
    return keys.slice(0, 15).map(function (k) { return [k, map.get(k)]; });
  }
  function renderBook() {
    var bids = levels(book.bids, true);
    var asks = levels(book.asks, false).reverse();
    bidsBody.replaceChildren.apply(bidsBody, bids.map(function (l) { return row(l[0], l[1], "buy"); }));
    asksBody.replaceChildren.apply(asksBody, asks.map(function (l) { return row(l[0], l[1], "sell"); }));
    if (bids.length && asks.length) {
      var spread = Number(asks[asks.length - 1][0]) - Number(bids[0][0]);
      spreadCell.textContent = "spread " + spread.toPrecision(6).replace(/\.?0+$/, "");
    } else {
      spreadCell.textContent = bids.length ? "no asks yet" : (asks.length ? "no bids yet" : "empty book");
    }
    root.dataset.bookUpdate = String(book.lastUpdateId);
  }
  function applyLevels(map, changes) {
    changes.forEach(function (l) {
      if (Number(l[1]) === 0) map.delete(l[0]); else map.set(l[0], l[1]);
    });
  }
  function applyDiff(ev) {
    if (ev.u <= book.lastUpdateId) return;
    applyLevels(book.bids, ev.b);
    applyLevels(book.asks, ev.a);
    book.lastUpdateId = ev.u;
  }
  function loadSnapshot() {
    fetch("/api/v3/depth?symbol=" + symbol + "&limit=100").then(function (r) { return r.json(); }).then(function (s) {
      book.bids = new Map(s.bids.map(function (l) { return [l[0], l[1]]; }));
      book.asks = new Map(s.asks.map(function (l) { return [l[0], l[1]]; }));
      book.lastUpdateId = s.lastUpdateId;
      book.ready = true;
      book.buffer.forEach(applyDiff);
      book.buffer = [];
      renderBook();
    });
  }

  // -- candle chart
  var canvas = document.getElementById("chart");
  var note = document.getElementById("chart-note");
  var candles = []; // [openTime, open, high, low, close]
  function drawChart() {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = 48;
    var style = getComputedStyle(document.documentElement);
    ctx.clearRect(0, 0, w, h);
    var shown = candles.slice(-90);
    canvas.dataset.candles = String(shown.length);
    if (!shown.length) { note.textContent = "No trades yet: the chart starts with the first trade."; return; }
    note.textContent = shown.length + " candle" + (shown.length === 1 ? "" : "s") + ", last close " + shown[shown.length - 1][4];
    var lo = Math.min.apply(null, shown.map(function (c) { return c[3]; }));
    var hi = Math.max.apply(null, shown.map(function (c) { return c[2]; }));
    if (hi === lo) { hi += Math.abs(hi) * 0.01 || 1; lo -= Math.abs(lo) * 0.01 || 1; }
    var y = function (p) { return 8 + (h - 24) * (hi - p) / (hi - lo); };
    var slots = Math.max(40, shown.length);  // the newest candle at the right edge, at most 90 shown
    var step = (w - pad) / slots;
    ctx.strokeStyle = "rgba(128,128,128,0.3)";
    ctx.fillStyle = style.getPropertyValue("--muted") || "#888";
    ctx.font = "11px sans-serif";
    [hi, (hi + lo) / 2, lo].forEach(function (p) {
      ctx.beginPath(); ctx.moveTo(0, y(p)); ctx.lineTo(w - pad, y(p)); ctx.stroke();
      ctx.fillText(String(Number(p.toPrecision(8))), w - pad + 4, y(p) + 4);
    });
    var up = style.getPropertyValue("--buy").trim() || "#2ea043";
    var down = style.getPropertyValue("--sell").trim() || "#f85149";
    shown.forEach(function (c, i) {
      var x = (slots - shown.length + i) * step + step / 2;
      var colour = c[4] >= c[1] ? up : down;
      ctx.strokeStyle = colour; ctx.fillStyle = colour;
      ctx.beginPath(); ctx.moveTo(x, y(c[2])); ctx.lineTo(x, y(c[3])); ctx.stroke();
      var top = y(Math.max(c[1], c[4])), bottom = y(Math.min(c[1], c[4]));
      ctx.fillRect(x - Math.max(1, step * 0.35), top - 1, Math.max(2, step * 0.7), Math.max(2, bottom - top));
    });
  }
  function putCandle(c) {
    var last = candles[candles.length - 1];
    if (last && last[0] === c[0]) candles[candles.length - 1] = c;
    else if (!last || c[0] > last[0]) candles.push(c);
    drawChart();
  }
  function loadCandles() {
    fetch("/api/v3/klines?symbol=" + symbol + "&interval=1m&limit=120").then(function (r) { return r.json(); })
      .then(function (rows) {
        candles = rows.map(function (k) { return [k[0], Number(k[1]), Number(k[2]), Number(k[3]), Number(k[4])]; });
        drawChart();
      });
  }

  // -- market trades
  var tradesBody = document.getElementById("public-trades");
  function addTrade(t) {
    var tr = document.createElement("tr");
    [[num(t.p), "num " + (t.m ? "sell" : "buy")], [num(t.q), "num"], [new Date(t.T).toISOString().slice(11, 19) + " UTC", ""]]
      .forEach(function (cell) { var td = document.createElement("td"); td.textContent = cell[0]; td.className = cell[1]; tr.appendChild(td); });
    tradesBody.insertBefore(tr, tradesBody.firstChild);
    while (tradesBody.children.length > 30) tradesBody.removeChild(tradesBody.lastChild);
  }

  // -- the user's open orders, fills and balances: re-fetched (server-rendered) shortly after market trades
  var mine = document.getElementById("mine");
  var mineTimer = null;
  function refreshMine() {
    if (!mine || mineTimer) return;
    mineTimer = setTimeout(function () {
      mineTimer = null;
      fetch(mine.dataset.src, { credentials: "same-origin", redirect: "error" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");  // our own autoescaped template
          ["my-balances", "mine-tables"].forEach(function (id) {
            var now = document.getElementById(id), next = fresh.getElementById(id);
            if (now && next) now.replaceWith(next);
          });
          mine.dataset.refreshed = String(Number(mine.dataset.refreshed || 0) + 1);
        })
        .catch(function () { /* logged out or offline: keep what is shown */ });
    }, 400);
  }

  // -- one combined stream for all three
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var names = [stream + "@depth@100ms", stream + "@kline_1m", stream + "@trade"];
    var ws = new WebSocket(scheme + location.host + "/stream?streams=" + names.join("/"));
    ws.onopen = function () { book.ready = false; book.buffer = []; loadSnapshot(); loadCandles(); };
    ws.onmessage = function (msg) {
      var env = JSON.parse(msg.data);
      var data = env.data;
      if (!data) return;
      if (data.e === "depthUpdate") {
        if (book.ready) { applyDiff(data); renderBook(); } else book.buffer.push(data);
      } else if (data.e === "kline") {
        var k = data.k;
        putCandle([k.t, Number(k.o), Number(k.h), Number(k.l), Number(k.c)]);
      } else if (data.e === "trade") {
        addTrade(data);
        refreshMine();  // a fill changes our orders and balances only through a trade
      }
    };
    ws.onclose = function () { root.dataset.live = "0"; setTimeout(connect, 2000); };
    root.dataset.live = "1";
  }
  connect();
})();
