/* RPS Quest — browser client.
 *
 * Talks to the server over one WebSocket (/ws, protocol 1) and two read-only HTTP
 * endpoints (/api/leaderboard, /api/opponents). Text from the server (names, messages)
 * only ever reaches the page through textContent; this file never uses innerHTML.
 */
(function () {
  "use strict";

  var MOVES = ["rock", "paper", "scissors"];
  var MOVE_LABEL = { rock: "Rock", paper: "Paper", scissors: "Scissors" };
  var KEY_MOVES = { r: "rock", p: "paper", s: "scissors", 1: "rock", 2: "paper", 3: "scissors" };
  var FAMILY_LABEL = {
    mlp: "neural network",
    xgboost: "XGBoost",
    logistic: "logistic regression"
  };
  var FAMILY_BLURB = {
    mlp: "A feedforward neural network that looks for patterns in how you play.",
    xgboost: "Gradient-boosted decision trees that split your habits into rules.",
    logistic: "Multinomial logistic regression: simple, fast and surprisingly sharp."
  };
  var NAME_RE = /^[\p{L}\p{Nd} _-]{1,24}$/u; // the server's rule: Unicode letters, decimal digits
  var STORE_GAME = "rpsquest.game";
  var STORE_ROUNDS = "rpsquest.rounds";
  var STORE_PLAYER = "rpsquest.player";
  var MAX_STORED_GAMES = 12;

  // ---------------------------------------------------------------- state
  var state = {
    ws: null,
    connected: false,
    retries: 0,
    reconnectTimer: null,
    opponents: [], // from welcome
    stats: {}, // opponent id -> {games, bot_win_rate}
    game: null, // {game_id, opponent, target, score, over, winner, next, history: [result]}
    pendingMove: null, // {game_id, round, move}
    pendingStart: null, // {opponent, player}
    resuming: null, // game_id of the resume in flight
    selectedRound: null, // history round whose insight is shown (null = latest)
    lastOpponent: null,
    savedGame: null, // in-memory copy of the stored game, when localStorage is unavailable
    roundsMem: {} // in-memory copy of the round store
  };

  // ---------------------------------------------------------------- helpers
  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function fmt(x) {
    var n = Number(x);
    if (!isFinite(n)) {
      return "–";
    }
    return (Math.round(n * 10) / 10).toFixed(1);
  }

  function fmtSigned(x) {
    var n = Number(x);
    if (!isFinite(n)) {
      return "–";
    }
    var s = Math.abs(n).toFixed(2);
    if (s === "0.00") {
      return "0.00";
    }
    return (n < 0 ? "\u2212" : "+") + s;
  }

  function pct(p) {
    return Math.round(Number(p) * 100) + " %";
  }

  function argmax(obj) {
    var best = null;
    MOVES.forEach(function (m) {
      if (obj && typeof obj[m] === "number" && (best === null || obj[m] > obj[best])) {
        best = m;
      }
    });
    return best;
  }

  function opponentInfo(id) {
    for (var i = 0; i < state.opponents.length; i++) {
      if (state.opponents[i].id === id) {
        return state.opponents[i];
      }
    }
    return { id: id, name: id ? id.charAt(0).toUpperCase() + id.slice(1) : "Bot", family: "" };
  }

  function opponentName(id) {
    return opponentInfo(id).name || "Bot";
  }

  // ---------------------------------------------------------------- storage
  function loadJSON(key) {
    try {
      var raw = window.localStorage.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  function saveJSON(key, value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, JSON.stringify(value));
      }
    } catch (e) {
      /* storage unavailable (private mode, quota): the game still works without resume */
    }
  }

  function storeGame(value) {
    state.savedGame = value;
    saveJSON(STORE_GAME, value);
  }

  function storedGame() {
    var g = loadJSON(STORE_GAME) || state.savedGame;
    if (g && typeof g.game_id === "string" && typeof g.token === "string") {
      return g;
    }
    return null;
  }

  function roundStore() {
    var all = loadJSON(STORE_ROUNDS);
    return all && typeof all === "object" ? all : state.roundsMem;
  }

  /* Remember what the server told us when round `n` opened: its commit and values. */
  function rememberRound(gameId, next) {
    if (!next || typeof next.round !== "number") {
      return;
    }
    var all = roundStore();
    var entry = all[gameId] || { t: 0, r: {} };
    entry.t = Date.now();
    entry.r[String(next.round)] = { c: String(next.commit || ""), v: next.values || null };
    all[gameId] = entry;
    var ids = Object.keys(all);
    if (ids.length > MAX_STORED_GAMES) {
      ids.sort(function (a, b) {
        return (all[a].t || 0) - (all[b].t || 0);
      });
      ids.slice(0, ids.length - MAX_STORED_GAMES).forEach(function (id) {
        delete all[id];
      });
    }
    state.roundsMem = all;
    saveJSON(STORE_ROUNDS, all);
  }

  function roundInfo(gameId, n) {
    var entry = roundStore()[gameId];
    return (entry && entry.r && entry.r[String(n)]) || null;
  }

  // ---------------------------------------------------------------- SHA-256
  function toHex(buffer) {
    var bytes = new Uint8Array(buffer);
    var hex = "";
    for (var i = 0; i < bytes.length; i++) {
      hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    }
    return hex;
  }

  function sha256Hex(text) {
    var fallback = function () {
      return window.RPSQ_SHA256.sha256Hex(text);
    };
    if (window.isSecureContext && window.crypto && window.crypto.subtle && typeof TextEncoder !== "undefined") {
      return window.crypto.subtle
        .digest("SHA-256", new TextEncoder().encode(text))
        .then(toHex)
        .catch(fallback);
    }
    return Promise.resolve().then(fallback);
  }

  /* game.md "Round values": each move's value for round n of game G (in points). */
  function computeValues(gameId, n) {
    var prefix = gameId + ":" + n + ":";
    return Promise.all([sha256Hex(prefix + "low"), sha256Hex(prefix + "base")]).then(function (h) {
      var low = parseInt(h[0].slice(0, 4), 16) % 3;
      var base = [11, 12, 13, 14, 15][parseInt(h[1].slice(0, 4), 16) % 5];
      var tenths = [0, 0, 0];
      tenths[low] = 10;
      tenths[(low + 2) % 3] = base + 5; // the move the low move beats: the high move
      tenths[(low + 1) % 3] = base; // the move that beats the low move: the middle move
      return { rock: tenths[0] / 10, paper: tenths[1] / 10, scissors: tenths[2] / 10 };
    });
  }

  var verifyCache = {};

  /* Resolves to "ok", "bad" or "unknown" (commit never seen by this browser). */
  function verifyRound(gameId, result) {
    var info = roundInfo(gameId, result.round);
    var commit = info && info.c ? String(info.c).toLowerCase() : "";
    if (!commit || typeof result.nonce !== "string") {
      return Promise.resolve("unknown");
    }
    var text = gameId + ":" + result.round + ":" + result.bot_move + ":" + result.nonce;
    var key = text + "|" + commit;
    if (!verifyCache[key]) {
      verifyCache[key] = sha256Hex(text).then(function (digest) {
        return digest === commit ? "ok" : "bad";
      });
    }
    return verifyCache[key];
  }

  // ---------------------------------------------------------------- toast / status
  var toastTimer = null;

  function toast(message, sticky) {
    $("toast-text").textContent = String(message);
    show($("toast"), true);
    if (toastTimer) {
      clearTimeout(toastTimer);
    }
    toastTimer = sticky
      ? null
      : setTimeout(function () {
          show($("toast"), false);
        }, 6000);
  }

  function setStatus(kind, text) {
    var node = $("conn-status");
    node.className = "conn conn-" + kind;
    node.textContent = text;
  }

  // ---------------------------------------------------------------- WebSocket
  function wsUrl() {
    var proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + window.location.host + "/ws";
  }

  function connect() {
    if (state.reconnectTimer) {
      clearTimeout(state.reconnectTimer);
      state.reconnectTimer = null;
    }
    setStatus("connecting", state.retries ? "Reconnecting…" : "Connecting…");
    var ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    ws.onmessage = function (event) {
      if (ws !== state.ws) {
        return;
      }
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (msg && typeof msg.type === "string") {
        handle(msg);
      }
    };
    ws.onclose = function () {
      if (ws !== state.ws) {
        return;
      }
      state.ws = null;
      state.connected = false;
      state.pendingStart = null;
      state.resuming = null;
      updateControls();
      updatePickerButtons();
      scheduleReconnect();
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  function scheduleReconnect() {
    var delay = Math.min(15000, 500 * Math.pow(2, state.retries));
    delay = Math.round(delay * (0.75 + Math.random() * 0.5));
    state.retries += 1;
    setStatus("offline", "Offline — retrying in " + Math.max(1, Math.round(delay / 1000)) + " s");
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      toast("Not connected to the server — reconnecting…");
      return false;
    }
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  // ---------------------------------------------------------------- messages
  function handle(msg) {
    switch (msg.type) {
      case "welcome":
        onWelcome(msg);
        break;
      case "game":
        onGame(msg);
        break;
      case "result":
        onResult(msg);
        break;
      case "error":
        onError(msg);
        break;
      default:
        break;
    }
  }

  function onWelcome(msg) {
    state.connected = true;
    state.retries = 0;
    setStatus("online", "Connected");
    state.opponents = Array.isArray(msg.opponents) ? msg.opponents : [];
    renderOpponents();
    var saved = storedGame();
    if (saved) {
      sendResume(saved);
    } else if (!state.game) {
      showPicker();
    } else {
      updateControls();
    }
  }

  function sendResume(saved) {
    state.resuming = saved.game_id;
    send({ type: "resume", game_id: saved.game_id, token: saved.token });
  }

  function resyncSoon() {
    var saved = storedGame();
    if (saved && !state.resuming) {
      sendResume(saved);
    }
  }

  function onGame(msg) {
    var isStart = typeof msg.token === "string" && msg.token !== "";
    if (isStart) {
      if (!state.pendingStart) {
        return; // not ours to show
      }
      state.pendingStart = null;
      updatePickerButtons();
      storeGame({ game_id: msg.game_id, token: msg.token, opponent: msg.opponent });
    } else {
      var saved = storedGame();
      if (!saved || saved.game_id !== msg.game_id) {
        return;
      }
      state.resuming = null;
    }
    state.lastOpponent = msg.opponent;
    if (msg.next) {
      rememberRound(msg.game_id, msg.next);
    }
    state.game = {
      game_id: msg.game_id,
      opponent: msg.opponent,
      target: typeof msg.target === "number" ? msg.target : 10,
      score: msg.score || { player: 0, bot: 0 },
      over: !!msg.over,
      winner: msg.winner || null,
      next: msg.next || null,
      history: Array.isArray(msg.history) ? msg.history.slice() : []
    };
    state.game.history.sort(function (a, b) {
      return a.round - b.round;
    });
    state.pendingMove = null;
    state.selectedRound = null;
    showGame();
    renderAll();
  }

  function onResult(msg) {
    var game = state.game;
    if (!game || msg.game_id !== game.game_id) {
      return;
    }
    var known = game.history.some(function (r) {
      return r.round === msg.round;
    });
    if (state.pendingMove && state.pendingMove.round === msg.round) {
      state.pendingMove = null;
    }
    if (known) {
      updateControls();
      return; // a replay of a stored result (safe retry)
    }
    if (msg.next) {
      rememberRound(game.game_id, msg.next);
    }
    game.history.push(msg);
    game.score = msg.score || game.score;
    game.over = !!msg.over;
    game.winner = msg.winner || null;
    game.next = msg.next || null;
    state.selectedRound = null;
    renderAll();
    if (game.over) {
      loadStats();
    }
  }

  function onError(msg) {
    var code = String(msg.code || "error");
    var message = String(msg.message || code);
    var saved = storedGame();

    if (state.resuming && (code === "unknown_game" || code === "bad_token") &&
        (!msg.game_id || msg.game_id === state.resuming)) {
      state.resuming = null;
      storeGame(null);
      state.game = null;
      state.pendingMove = null;
      toast("Your previous game could not be resumed (" + message + "). Pick an opponent to play again.");
      showPicker();
      return;
    }
    if (state.resuming && (!msg.game_id || msg.game_id === state.resuming)) {
      // The server could not answer the resume right now: try again shortly.
      var gameId = state.resuming;
      state.resuming = null;
      toast(message + " — retrying…");
      setTimeout(function () {
        var again = storedGame();
        if (again && again.game_id === gameId && state.connected) {
          sendResume(again);
        }
      }, 3000);
      return;
    }
    if (state.pendingStart && !msg.game_id) {
      state.pendingStart = null;
      updatePickerButtons();
      if (code === "bad_message") {
        showNameError(message);
      }
      toast(message);
      return;
    }
    if (msg.game_id && state.game && msg.game_id === state.game.game_id) {
      state.pendingMove = null;
      if (code === "wrong_round" || code === "game_over" || code === "not_yours") {
        // Out of step with the server: fetch the game's true state.
        if (saved && saved.game_id === msg.game_id) {
          sendResume(saved);
        }
        return;
      }
      toast(message);
      updateControls();
      return;
    }
    if (state.pendingMove && !msg.game_id) {
      state.pendingMove = null;
      updateControls();
    }
    toast(message);
  }

  // ---------------------------------------------------------------- actions
  function validateName(raw) {
    var name = String(raw || "").trim();
    if (name.normalize) {
      name = name.normalize("NFC");
    }
    if (name === "") {
      return { ok: true, name: null };
    }
    if (Array.from(name).length > 24) {
      return { ok: false, error: "Your name can have at most 24 characters." };
    }
    if (!NAME_RE.test(name)) {
      return { ok: false, error: "Use only letters, digits, spaces, _ or - in your name." };
    }
    return { ok: true, name: name };
  }

  function showNameError(text) {
    var node = $("name-error");
    node.textContent = text || "";
    show(node, !!text);
    $("player-name").setAttribute("aria-invalid", text ? "true" : "false");
  }

  function startGame(opponent) {
    var check = validateName($("player-name").value);
    if (!check.ok) {
      showNameError(check.error);
      showPicker();
      $("player-name").focus();
      return;
    }
    showNameError("");
    saveJSON(STORE_PLAYER, check.name || "");
    var msg = { type: "start", opponent: opponent };
    if (check.name) {
      msg.player = check.name;
    }
    if (send(msg)) {
      state.pendingStart = { opponent: opponent };
      state.lastOpponent = opponent;
      updatePickerButtons();
    }
  }

  function playMove(move) {
    var game = state.game;
    if (!game || game.over || !game.next || state.pendingMove || !state.connected) {
      return;
    }
    var round = game.next.round;
    if (send({ type: "move", game_id: game.game_id, round: round, move: move })) {
      state.pendingMove = { game_id: game.game_id, round: round, move: move };
      updateControls();
    }
  }

  function leaveGame() {
    storeGame(null);
    state.game = null;
    state.pendingMove = null;
    state.resuming = null;
    showPicker();
  }

  // ---------------------------------------------------------------- screens
  function showPicker() {
    show($("picker"), true);
    show($("game"), false);
    updatePickerButtons();
  }

  function showGame() {
    show($("picker"), false);
    show($("game"), true);
  }

  function renderOpponents() {
    var box = $("opponents");
    clear(box);
    if (!state.opponents.length) {
      box.appendChild(el("p", "muted placeholder", "No opponents are available right now."));
      return;
    }
    state.opponents.forEach(function (o) {
      var btn = el("button", "card card-" + String(o.family || "other"));
      btn.type = "button";
      btn.setAttribute("data-opponent", String(o.id));
      var avatar = el("span", "avatar", String(o.name || o.id).charAt(0).toUpperCase());
      avatar.setAttribute("aria-hidden", "true");
      btn.appendChild(avatar);
      var body = el("span", "card-body");
      body.appendChild(el("span", "card-name", o.name || o.id));
      body.appendChild(el("span", "card-family", FAMILY_LABEL[o.family] || o.family || ""));
      body.appendChild(el("span", "card-blurb", FAMILY_BLURB[o.family] || ""));
      var stat = el("span", "card-stat");
      stat.setAttribute("data-stat-for", String(o.id));
      body.appendChild(stat);
      btn.appendChild(body);
      btn.appendChild(el("span", "card-cta", "Play " + (o.name || o.id)));
      btn.addEventListener("click", function () {
        startGame(String(o.id));
      });
      box.appendChild(btn);
    });
    renderStats();
    updatePickerButtons();
  }

  function renderStats() {
    var nodes = document.querySelectorAll("#opponents [data-stat-for]");
    Array.prototype.forEach.call(nodes, function (node) {
      var s = state.stats[node.getAttribute("data-stat-for")];
      if (!s) {
        node.textContent = "";
      } else if (typeof s.bot_win_rate === "number" && s.games > 0) {
        node.textContent = "Wins " + Math.round(s.bot_win_rate * 100) + " % of " + s.games +
          (s.games === 1 ? " game" : " games") + " against people";
      } else {
        node.textContent = "No games against people yet";
      }
    });
  }

  function updatePickerButtons() {
    var busy = !!state.pendingStart || !state.connected;
    var nodes = document.querySelectorAll("#opponents button[data-opponent]");
    Array.prototype.forEach.call(nodes, function (b) {
      b.disabled = busy;
      b.classList.toggle("is-loading", !!state.pendingStart && state.pendingStart.opponent === b.dataset.opponent);
    });
    ["play-again", "change-opponent"].forEach(function (id) {
      $(id).disabled = !!state.pendingStart;
    });
  }

  function renderAll() {
    var game = state.game;
    if (!game) {
      return;
    }
    var name = opponentName(game.opponent);
    $("opponent-name").textContent = name;
    $("score-bot-label").textContent = name;
    $("target").textContent = fmt(game.target).replace(/\.0$/, "");
    renderScore();
    renderMoves();
    renderLastResult();
    renderHistory();
    renderInsight();
    renderGameOver();
    updateControls();
  }

  function renderScore() {
    var game = state.game;
    var target = game.target || 10;
    [["player", "score-player", "bar-player"], ["bot", "score-bot", "bar-bot"]].forEach(function (x) {
      var v = Number(game.score[x[0]]) || 0;
      $(x[1]).textContent = fmt(v);
      $(x[2]).style.width = Math.max(0, Math.min(100, (v / target) * 100)) + "%";
    });
    $("round-label").textContent = game.over
      ? "Game over · " + game.history.length + " rounds"
      : game.next
        ? "Round " + game.next.round
        : "";
  }

  function ranks(values) {
    // high / middle / low by value
    var sorted = MOVES.slice().sort(function (a, b) {
      return values[b] - values[a];
    });
    var r = {};
    r[sorted[0]] = "high";
    r[sorted[1]] = "middle";
    r[sorted[2]] = "low";
    return r;
  }

  function renderMoves() {
    var game = state.game;
    var values = game.next && game.next.values;
    var rk = values ? ranks(values) : {};
    MOVES.forEach(function (m) {
      var btn = document.querySelector('#moves button[data-move="' + m + '"]');
      btn.querySelector(".move-value").textContent = values ? fmt(values[m]) : "–";
      btn.querySelector(".move-rank").textContent = rk[m] ? (rk[m] === "high" ? "★ high" : rk[m]) : "";
      btn.classList.toggle("is-high", rk[m] === "high");
      btn.classList.toggle("is-low", rk[m] === "low");
      btn.setAttribute(
        "aria-label",
        MOVE_LABEL[m] + (values ? ", worth " + fmt(values[m]) + (rk[m] === "high" ? ", the most valuable move" : "") : "")
      );
    });
    show($("play-area"), !game.over);
  }

  function updateControls() {
    var game = state.game;
    var enabled = !!(game && !game.over && game.next && !state.pendingMove && state.connected && !state.resuming);
    var nodes = document.querySelectorAll("#moves button[data-move]");
    Array.prototype.forEach.call(nodes, function (b) {
      b.disabled = !enabled;
      b.classList.toggle("is-chosen", !!state.pendingMove && state.pendingMove.move === b.dataset.move);
    });
    $("moves").setAttribute("aria-busy", state.pendingMove ? "true" : "false");
  }

  function outcomeText(outcome, name) {
    if (outcome === "win") {
      return "You win the round";
    }
    if (outcome === "lose") {
      return name + " wins the round";
    }
    return "Draw";
  }

  function renderLastResult() {
    var game = state.game;
    var box = $("last-result");
    clear(box);
    var last = game.history[game.history.length - 1];
    if (!last) {
      show(box, false);
      return;
    }
    var name = opponentName(game.opponent);
    box.className = "last-result outcome-" + String(last.outcome);
    var line = el("p", "last-line");
    line.appendChild(el("span", "tag", "Round " + last.round));
    line.appendChild(document.createTextNode(" You played "));
    line.appendChild(el("strong", null, MOVE_LABEL[last.player_move] || last.player_move));
    line.appendChild(document.createTextNode(", " + name + " played "));
    line.appendChild(el("strong", null, MOVE_LABEL[last.bot_move] || last.bot_move));
    line.appendChild(document.createTextNode("."));
    box.appendChild(line);
    var pts = last.points || {};
    var verdict = outcomeText(last.outcome, name);
    if (last.outcome === "win") {
      verdict += " (+" + fmt(pts.player) + ")";
    } else if (last.outcome === "lose") {
      verdict += " (+" + fmt(pts.bot) + " for " + name + ")";
    } else {
      verdict += " (+" + fmt(pts.player) + " each)";
    }
    box.appendChild(el("p", "last-verdict", verdict));
    var fair = el("p", "last-fair muted", "Checking fair play…");
    box.appendChild(fair);
    verifyRound(game.game_id, last).then(function (status) {
      fair.textContent =
        status === "ok"
          ? "✓ Fair play verified: the bot committed to " + last.bot_move + " before you moved."
          : status === "bad"
            ? "⚠ Commit mismatch: the revealed move does not match the commitment!"
            : "Fair play not verified: this browser did not see the commitment for this round.";
      fair.className = "last-fair " + (status === "ok" ? "ok" : status === "bad" ? "bad" : "muted");
    });
    show(box, true);
  }

  function valuesForRow(gameId, result, cell) {
    var info = roundInfo(gameId, result.round);
    var fill = function (values) {
      clear(cell);
      var rk = ranks(values);
      MOVES.forEach(function (m, i) {
        if (i) {
          cell.appendChild(document.createTextNode(" "));
        }
        var span = el("span", "v v-" + rk[m], fmt(values[m]));
        span.title = MOVE_LABEL[m] + " " + fmt(values[m]);
        cell.appendChild(span);
      });
    };
    if (info && info.v) {
      fill(info.v);
    } else {
      cell.textContent = "…";
      computeValues(gameId, result.round).then(fill);
    }
  }

  function fairMark(status) {
    var mark = el("span", "fair fair-" + status);
    if (status === "ok") {
      mark.textContent = "✓";
      mark.title = "Fair play verified: SHA-256 of the revealed move and nonce matches the commitment sent before you moved.";
      mark.setAttribute("aria-label", "fair play verified");
    } else if (status === "bad") {
      mark.textContent = "⚠";
      mark.title = "Commit mismatch: the revealed move and nonce do not match the commitment.";
      mark.setAttribute("aria-label", "commit mismatch");
    } else if (status === "unknown") {
      mark.textContent = "?";
      mark.title = "Unverified: this browser never saw the commitment for this round.";
      mark.setAttribute("aria-label", "unverified");
    } else {
      mark.textContent = "…";
      mark.title = "Checking…";
    }
    return mark;
  }

  /* A history cell: the move's icon (cloned from its button) and its name (hidden on phones). */
  function moveCell(move) {
    var td = el("td", "c-move");
    var label = MOVE_LABEL[move] || String(move);
    td.title = label;
    var icon = document.querySelector('#moves button[data-move="' + move + '"] .move-icon');
    if (icon) {
      var copy = icon.cloneNode(true);
      copy.setAttribute("class", "mini-icon");
      td.appendChild(copy);
    }
    td.appendChild(el("span", "mv-word", label));
    return td;
  }

  function renderHistory() {
    var game = state.game;
    var body = $("history-body");
    clear(body);
    var name = opponentName(game.opponent);
    var badRounds = [];
    var alertBox = $("fair-alert");
    show(alertBox, false);
    var gameId = game.game_id;
    game.history
      .slice()
      .reverse()
      .forEach(function (r) {
        var tr = el("tr", "row-" + String(r.outcome));
        tr.setAttribute("data-round", String(r.round));
        tr.tabIndex = 0;
        if (state.selectedRound === r.round) {
          tr.classList.add("is-selected");
        }
        tr.appendChild(el("td", "c-round", r.round));
        var vcell = el("td", "c-values");
        valuesForRow(game.game_id, r, vcell);
        tr.appendChild(vcell);
        tr.appendChild(moveCell(r.player_move));
        tr.appendChild(moveCell(r.bot_move));
        var oc = el("td", "c-outcome", r.outcome === "win" ? "Win" : r.outcome === "lose" ? "Loss" : "Draw");
        oc.title = outcomeText(r.outcome, name);
        tr.appendChild(oc);
        var pts = r.points || {};
        tr.appendChild(el("td", "c-points", fmt(pts.player) + " : " + fmt(pts.bot)));
        var fcell = el("td", "c-fair");
        var mark = fairMark("pending");
        fcell.appendChild(mark);
        tr.appendChild(fcell);
        verifyRound(gameId, r).then(function (status) {
          fcell.replaceChild(fairMark(status), fcell.firstChild);
          if (status === "bad" && state.game && state.game.game_id === gameId && tr.parentNode === body) {
            badRounds.push(r.round);
            badRounds.sort(function (a, b) {
              return a - b;
            });
            alertBox.textContent =
              "⚠ Commit mismatch in round" + (badRounds.length > 1 ? "s " : " ") + badRounds.join(", ") +
              ": the move the server revealed does not match the commitment it sent before you moved.";
            show(alertBox, true);
          }
        });
        var select = function () {
          state.selectedRound = state.selectedRound === r.round ? null : r.round;
          Array.prototype.forEach.call(body.querySelectorAll("tr"), function (row) {
            row.classList.toggle("is-selected", row.getAttribute("data-round") === String(state.selectedRound));
          });
          renderInsight();
        };
        tr.addEventListener("click", select);
        tr.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            select();
          }
        });
        body.appendChild(tr);
      });
  }

  function bar(label, fraction, valueText, classes) {
    var row = el("div", "bar-row " + (classes || ""));
    row.appendChild(el("span", "bar-label", label));
    var track = el("span", "bar-track");
    var fill = el("span", "bar-fill");
    fill.style.width = Math.max(0, Math.min(100, fraction * 100)) + "%";
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", "bar-value", valueText));
    return row;
  }

  function evBar(label, value, scale, classes) {
    var row = el("div", "bar-row ev-row " + (classes || ""));
    row.appendChild(el("span", "bar-label", label));
    var track = el("span", "bar-track ev-track");
    var fill = el("span", "bar-fill " + (value < 0 ? "ev-neg" : "ev-pos"));
    var half = scale > 0 ? Math.min(50, (Math.abs(value) / scale) * 50) : 0;
    fill.style.width = half + "%";
    fill.style.left = value < 0 ? 50 - half + "%" : "50%";
    track.appendChild(el("span", "ev-axis"));
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", "bar-value", fmtSigned(value)));
    return row;
  }

  function explain(result, name) {
    var ins = result.insight || {};
    var probs = ins.probs || {};
    var ev = ins.ev || {};
    var expected = argmax(probs);
    var best = argmax(ev);
    var played = result.bot_move;
    var guess = expected ? name + " thought you would play " + expected + " (" + pct(probs[expected]) + ")" : "";
    if (ins.source === "opening") {
      return (
        "Round " + result.round + " is part of " + name + "’s scripted opening, so it played " + played +
        " by the script" + (guess ? ". Its predictor expected " + expected + " (" + pct(probs[expected]) + ")." : ".")
      );
    }
    if (!guess || !best) {
      return name + " played " + played + ".";
    }
    if (best === played) {
      return guess + ", so " + played + " had the best expected value (" + fmtSigned(ev[played]) + ").";
    }
    return (
      guess + "; " + best + " had the best expected value (" + fmtSigned(ev[best]) +
      "), but it mixes its moves to stay unpredictable and played " + played + " (" + fmtSigned(ev[played]) + ")."
    );
  }

  function renderInsight() {
    var game = state.game;
    var box = $("insight");
    var result = null;
    game.history.forEach(function (r) {
      if (state.selectedRound === null ? true : r.round === state.selectedRound) {
        result = r;
      }
    });
    if (!result || !result.insight) {
      show(box, false);
      return;
    }
    var ins = result.insight;
    var name = opponentName(game.opponent);
    $("insight-title").textContent = "Inside " + name + "’s head · round " + result.round;
    $("insight-text").textContent = explain(result, name);

    var probs = ins.probs || {};
    var expected = argmax(probs);
    var pbox = $("insight-probs");
    clear(pbox);
    MOVES.forEach(function (m) {
      var cls = (m === expected ? "is-top " : "") + (m === result.player_move ? "is-yours" : "");
      var label = MOVE_LABEL[m] + (m === result.player_move ? " (you)" : "");
      pbox.appendChild(bar(label, Number(probs[m]) || 0, pct(probs[m] || 0), cls));
    });

    var ev = ins.ev || {};
    var scale = 0;
    MOVES.forEach(function (m) {
      scale = Math.max(scale, Math.abs(Number(ev[m]) || 0));
    });
    var ebox = $("insight-ev");
    clear(ebox);
    MOVES.forEach(function (m) {
      var chosen = m === result.bot_move;
      ebox.appendChild(
        evBar(MOVE_LABEL[m] + (chosen ? " (played)" : ""), Number(ev[m]) || 0, scale, chosen ? "is-chosen" : "")
      );
    });

    var source = "";
    if (ins.source === "opening") {
      source = "Rounds 1–3: " + name + " plays a scripted opening; the numbers show what its predictor expected anyway.";
    } else if (ins.source === "online") {
      source = "Prediction from " + name + "’s in-game pattern tracker, which learns your habits as you play.";
    } else if (ins.source === "model") {
      source =
        "Prediction from " + name + "’s trained " + (FAMILY_LABEL[ins.family] || ins.family || "") +
        " model blended with its in-game pattern tracker, each weighted by how well it has predicted you so far.";
    }
    if (ins.opening || ins.version) {
      source +=
        (source ? " " : "") +
        (ins.opening ? "Opening: " + ins.opening + ". " : "") +
        (ins.alias ? "Model: " + ins.alias : "") +
        (ins.version ? (ins.alias ? ", version " : "Model version ") + ins.version + "." : "");
    }
    $("insight-source").textContent = source;
    show(box, true);
  }

  function renderGameOver() {
    var game = state.game;
    var box = $("game-over");
    if (!game.over) {
      show(box, false);
      return;
    }
    var name = opponentName(game.opponent);
    var text = game.winner === "player" ? "You win!" : game.winner === "bot" ? name + " wins" : "Tie";
    var winner = $("winner");
    winner.textContent = text;
    box.className = "game-over winner-" + String(game.winner);
    $("final-score").textContent = "You " + fmt(game.score.player) + " – " + fmt(game.score.bot) + " " + name;
    var last = game.history[game.history.length - 1];
    var ins = (last && last.insight) || {};
    $("model-alias").textContent = ins.alias ? String(ins.alias) : "unknown alias";
    $("model-version").textContent = ins.version ? String(ins.version) : "unknown";
    $("opening-name").textContent = ins.opening ? String(ins.opening) : "unknown";
    $("play-again").title = "A new game against " + name;
    show(box, true);
  }

  // ---------------------------------------------------------------- HTTP data
  function getJSON(path) {
    return fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" }).then(function (r) {
      if (!r.ok) {
        throw new Error(path + ": HTTP " + r.status);
      }
      return r.json();
    });
  }

  function loadStats() {
    getJSON("/api/opponents")
      .then(function (data) {
        var stats = {};
        (data && Array.isArray(data.opponents) ? data.opponents : []).forEach(function (o) {
          stats[String(o.id)] = { games: Number(o.games) || 0, bot_win_rate: o.bot_win_rate };
        });
        state.stats = stats;
        renderStats();
      })
      .catch(function () {
        /* optional decoration */
      });
    loadLeaderboard();
  }

  function loadLeaderboard() {
    var box = $("leaderboard");
    getJSON("/api/leaderboard")
      .then(function (data) {
        clear(box);
        var list = data && Array.isArray(data.opponents) ? data.opponents : [];
        if (!list.length) {
          box.appendChild(el("p", "muted", "No games yet."));
          return;
        }
        list.forEach(function (o) {
          var col = el("div", "lb-col");
          col.setAttribute("data-opponent", String(o.opponent));
          col.appendChild(el("h3", "lb-title", "vs " + (o.name || opponentName(o.opponent))));
          var players = Array.isArray(o.players) ? o.players.slice(0, 10) : [];
          if (!players.length) {
            col.appendChild(el("p", "muted small", "Nobody has beaten " + (o.name || o.opponent) + " yet."));
          } else {
            var ol = el("ol", "lb-list");
            players.forEach(function (p) {
              var li = el("li", "lb-item");
              li.appendChild(el("span", "lb-name", p.player === null || p.player === undefined ? "anonymous" : p.player));
              var games = Number(p.games) || 0;
              var wins = Number(p.wins) || 0;
              li.appendChild(
                el(
                  "span",
                  "lb-stat",
                  wins + (wins === 1 ? " win" : " wins") + " · " + games + (games === 1 ? " game" : " games")
                )
              );
              li.title = wins + " wins in " + games + " games";
              ol.appendChild(li);
            });
            col.appendChild(ol);
          }
          box.appendChild(col);
        });
      })
      .catch(function () {
        clear(box);
        box.appendChild(el("p", "muted", "The leaderboard is not available right now."));
      });
  }

  // ---------------------------------------------------------------- wiring
  function init() {
    var savedName = loadJSON(STORE_PLAYER);
    if (typeof savedName === "string") {
      $("player-name").value = savedName;
    }
    $("player-name").addEventListener("input", function () {
      var check = validateName(this.value);
      showNameError(check.ok ? "" : check.error);
    });

    Array.prototype.forEach.call(document.querySelectorAll("#moves button[data-move]"), function (b) {
      b.addEventListener("click", function () {
        playMove(b.dataset.move);
      });
    });

    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) {
        return;
      }
      var t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
        return;
      }
      var move = KEY_MOVES[String(e.key).toLowerCase()];
      if (move && state.game && !$("game").hidden) {
        e.preventDefault();
        playMove(move);
      }
    });

    $("play-again").addEventListener("click", function () {
      var opponent = (state.game && state.game.opponent) || state.lastOpponent;
      if (opponent) {
        startGame(opponent);
      } else {
        leaveGame();
      }
    });
    $("change-opponent").addEventListener("click", leaveGame);
    $("leave-game").addEventListener("click", leaveGame);
    $("toast-close").addEventListener("click", function () {
      show($("toast"), false);
    });

    loadStats();
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
