// Built by desktop/build-web.ts from desktop/src/web: edit those, then `make webview`.
(() => {
  // desktop/src/shared/protocol.ts
  var PROTOCOL = 1;
  function socketUrl(host, token) {
    return `ws://${host}/ws?token=${encodeURIComponent(token)}`;
  }
  function tokenFromHash(hash) {
    const params = new URLSearchParams(hash.replace(/^#/, ""));
    const token = params.get("token");
    return token ? token : null;
  }

  // desktop/src/web/dom.ts
  function byId(id) {
    const found = document.getElementById(id);
    if (found === null)
      throw new Error(`the page has no #${id}`);
    return found;
  }
  function el(tag, className = "", text = null) {
    const node = document.createElement(tag);
    if (className)
      node.className = className;
    if (text !== null)
      node.textContent = text;
    return node;
  }
  function button(label, action, className = "") {
    const node = el("button", className, label);
    node.type = "button";
    node.addEventListener("click", action);
    return node;
  }
  function fill(parent, children) {
    parent.replaceChildren(...children);
  }

  // desktop/src/web/timeline.ts
  var KEEP_MESSAGES = 20000;
  function bisectRight(xs, x) {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = lo + hi >> 1;
      if (xs[mid] <= x)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }
  function bisectLeft(xs, x) {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = lo + hi >> 1;
      if (xs[mid] < x)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }
  function step(seqs, marks, seq, by) {
    if (seqs.length === 0)
      return 0;
    if (by > 0) {
      const index = bisectRight(marks, seq) + by - 1;
      return index < marks.length ? marks[index] : seqs[seqs.length - 1];
    }
    if (by < 0) {
      const index = bisectLeft(marks, seq) + by;
      return index >= 0 ? marks[index] : seqs[0];
    }
    const index = bisectRight(seqs, seq) - 1;
    return seqs[Math.max(index, 0)];
  }

  class Feed {
    lastSeq = 0;
    latestRun = null;
    runs = new Map;
    messages = [];
    taskEvents;
    constructor(taskEvents = []) {
      this.taskEvents = new Set(taskEvents);
    }
    add(frame) {
      if (frame.seq <= this.lastSeq)
        return false;
      this.lastSeq = frame.seq;
      this.latestRun = frame.run_id;
      let run = this.runs.get(frame.run_id);
      if (run === undefined) {
        run = { seqs: [], events: [] };
        this.runs.set(frame.run_id, run);
      }
      run.seqs.push(frame.seq);
      if (this.taskEvents.has(frame.kind))
        run.events.push(frame.seq);
      this.messages.push({ ...frame, message: {} });
      if (this.messages.length > KEEP_MESSAGES * 1.25) {
        this.messages = this.messages.slice(-KEEP_MESSAGES);
      }
      return true;
    }
    seqsOf(runId) {
      return runId !== null && this.runs.get(runId) || { seqs: [], events: [] };
    }
  }
  function concerns(frame, who) {
    if (frame.said === null)
      return false;
    if (who === null)
      return true;
    return frame.sender === who || frame.recipient === who || frame.said.agent_id === who;
  }
  function streamOf(messages, runId, who, until, limit) {
    const found = [];
    for (let i = messages.length - 1;i >= 0 && found.length < limit; i--) {
      const frame = messages[i];
      if (until !== null && frame.seq > until)
        continue;
      if (runId !== null && frame.run_id !== runId)
        continue;
      if (concerns(frame, who))
        found.push(frame);
    }
    return found.reverse();
  }
  function clock(ts) {
    const date = new Date(ts * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  }
  function parentOf(path) {
    const parts = path.split("/").filter((p) => p !== "");
    parts.pop();
    return parts.join("/");
  }
  function join(path, name) {
    return path === "" ? name : `${path}/${name}`;
  }
  function indexOf(seqs, seq) {
    return Math.max(0, bisectRight(seqs, seq) - 1);
  }

  // desktop/src/web/app.ts
  var STREAM_LINES = 400;
  var REDRAW_MS = 80;
  var RETRY_MS = [500, 1000, 2000, 4000, 8000];
  var CONFIRM_MS = 5000;
  var feed = new Feed;
  var socket = null;
  var token = null;
  var retries = 0;
  var hello = null;
  var caughtUp = false;
  var at = null;
  var shownRun = null;
  var snapshot = null;
  var who = null;
  var asked = 0;
  var waitingFor = null;
  var stale = false;
  var redrawTimer = null;
  var pinned = true;
  var folder = "";
  var chosen = null;
  var notes = new Map;
  var stopArmed = null;
  function send(frame) {
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      reply("not connected to the gateway: the command was not sent", "bad");
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }
  function connect() {
    if (token === null)
      return;
    setConnection("connecting");
    let opened = false;
    const ws = new WebSocket(socketUrl(location.host, token));
    socket = ws;
    ws.addEventListener("open", () => {
      opened = true;
      retries = 0;
      caughtUp = false;
      setConnection("catching up");
      banner(null);
      send({ type: "subscribe", from_seq: feed.lastSeq });
      askSnapshot();
      listFolder(folder);
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string")
        return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      receive(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws)
        return;
      socket = null;
      waitingFor = null;
      if (opened) {
        const why = event.reason ? `: ${event.reason}` : "";
        lost(`the connection to the gateway closed (code ${event.code}${why})`);
      } else {
        diagnose();
      }
    });
  }
  async function diagnose() {
    let served = false;
    try {
      const answer = await fetch("index.html", { cache: "no-store" });
      served = answer.ok;
    } catch {
      served = false;
    }
    if (served) {
      setConnection("refused");
      banner("The gateway refused this page's token. Open the link `autonoma serve` prints " + "(or run `autonoma dashboard --web`): the token changes each time the gateway starts.", "bad", true);
    } else {
      lost("the gateway is not answering (is `autonoma serve` still running?)");
    }
  }
  function lost(why) {
    setConnection("gone");
    const wait = RETRY_MS[Math.min(retries, RETRY_MS.length - 1)];
    retries += 1;
    banner(`Gateway gone: ${why}. Reconnecting in ${Math.round(wait / 100) / 10} s, from seq ${feed.lastSeq}.`, "bad", false);
    window.setTimeout(connect, wait);
  }
  function receive(frame) {
    switch (frame.type) {
      case "hello":
        hello = frame;
        feed.taskEvents = new Set(frame.task_events ?? []);
        byId("project").textContent = frame.project;
        if (frame.protocol !== PROTOCOL) {
          banner(`This page speaks protocol ${PROTOCOL}, the gateway ${frame.protocol}: reload the page.`, "warn", false);
        }
        return;
      case "message":
        if (feed.add(frame)) {
          if (at === null)
            askSnapshot();
          redrawSoon();
        }
        return;
      case "live":
        caughtUp = true;
        setConnection("live");
        askSnapshot();
        redrawSoon();
        return;
      case "snapshot":
        if (frame.id !== waitingFor)
          return;
        waitingFor = null;
        snapshot = frame;
        shownRun = frame.run_id;
        drawSnapshot(frame);
        if (stale) {
          stale = false;
          askSnapshot();
        }
        return;
      case "ack":
        reply(frame.text, "good");
        return;
      case "error":
        reply(frame.error, "bad");
        return;
      case "listing":
        drawListing(frame);
        return;
      case "dropped":
        reply(`the gateway dropped this page (${frame.reason}): resubscribing`, "warn");
        return;
    }
  }
  function askSnapshot() {
    if (socket === null || socket.readyState !== WebSocket.OPEN)
      return;
    if (at === null && waitingFor !== null) {
      stale = true;
      return;
    }
    asked += 1;
    waitingFor = `s${asked}`;
    send({
      type: "snapshot",
      id: waitingFor,
      at_seq: at,
      run_id: at === null ? null : shownRun
    });
  }
  function runSeqs() {
    return feed.seqsOf(shownRun ?? feed.latestRun);
  }
  function travelTo(seq) {
    const { seqs } = runSeqs();
    const last = seqs.length ? seqs[seqs.length - 1] : 0;
    at = seq === null || seq >= last ? null : seq;
    stale = false;
    waitingFor = null;
    askSnapshot();
    redrawSoon();
  }
  function travel(by, taskEvents) {
    const { seqs, events } = runSeqs();
    if (seqs.length === 0)
      return;
    const from = at ?? seqs[seqs.length - 1];
    travelTo(step(seqs, taskEvents ? events : seqs, from, by));
  }
  function drawTravel() {
    const { seqs } = runSeqs();
    const slider = byId("slider");
    slider.max = String(Math.max(0, seqs.length - 1));
    slider.disabled = seqs.length === 0;
    const shown = at ?? (seqs.length ? seqs[seqs.length - 1] : 0);
    slider.value = String(at === null ? Math.max(0, seqs.length - 1) : indexOf(seqs, shown));
    const where = byId("where");
    if (at === null) {
      where.textContent = `live · seq ${feed.lastSeq}`;
    } else {
      const index = indexOf(seqs, at) + 1;
      where.textContent = `seq ${at} · message ${index} of ${seqs.length} of this run`;
    }
    document.body.classList.toggle("past", at !== null);
    byId("past").hidden = at === null;
    byId("past-seq").textContent = String(at ?? "");
    byId("go-live").disabled = at === null;
  }
  function redrawSoon() {
    if (redrawTimer !== null)
      return;
    redrawTimer = window.setTimeout(() => {
      redrawTimer = null;
      drawStream();
      drawTravel();
    }, REDRAW_MS);
  }
  function lines(list, rows) {
    fill(list, rows.map(([text, level]) => el("li", `level-${level}`, text)));
  }
  function drawSnapshot(frame) {
    const view = frame.view;
    drawTree(view.tree);
    drawBoard(view.board);
    lines(byId("run"), view.run);
    lines(byId("escalations"), view.escalations);
    if (view.escalations.length === 0) {
      fill(byId("escalations"), [el("li", "empty", "no escalation")]);
    }
    fill(byId("costs"), view.costs.length ? view.costs.map((c) => el("li", "", c)) : [el("li", "empty", "nothing spent yet")]);
    drawEscalated(view.board.filter((row) => row.raw_state === "escalated"));
    byId("run-id").textContent = frame.run_id ?? "no run yet";
    drawTravel();
    drawStream();
  }
  function drawTree(root) {
    const agents = new Set;
    const item = (node) => {
      agents.add(node.name);
      const li = el("li");
      li.setAttribute("role", "treeitem");
      const pick = button(node.label, () => pickAgent(node.name === "root" ? null : node.name), `node level-${node.level}`);
      pick.dataset.agent = node.name;
      if ((who ?? "root") === node.name) {
        pick.classList.add("picked");
        pick.setAttribute("aria-pressed", "true");
      }
      li.append(pick);
      if (node.children.length) {
        const ul = el("ul");
        ul.setAttribute("role", "group");
        ul.append(...node.children.map(item));
        li.append(ul);
      }
      return li;
    };
    fill(byId("tree"), [item(root)]);
  }
  function pickAgent(name) {
    who = name;
    byId("who").textContent = name ?? "every agent";
    if (snapshot !== null)
      drawTree(snapshot.view.tree);
    drawStream();
  }
  function drawBoard(rows) {
    const body = byId("board-rows");
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "empty", "no task yet (the plan comes first)");
      td.colSpan = 6;
      tr.append(td);
      fill(body, [tr]);
      return;
    }
    fill(body, rows.map((row) => {
      const tr = el("tr", `state-${row.raw_state}${row.critical ? " critical" : ""}`);
      tr.dataset.task = row.task_id;
      const id = el("td", "task-id", row.task_id);
      if (row.critical) {
        const mark = el("span", "crit", "◆");
        mark.title = "on the critical path";
        mark.setAttribute("aria-label", "on the critical path");
        id.prepend(mark, " ");
      }
      tr.append(id, el("td", "title", row.title), el("td", "state", row.state), el("td", "deps", row.deps), el("td", "num", String(row.attempts)), el("td", "num", row.cost));
      return tr;
    }));
  }
  function drawEscalated(rows) {
    const forms = rows.map((row) => {
      const form = el("form", "escalated");
      form.dataset.task = row.task_id;
      const label = el("label", "", `${row.task_id}: a note for the retry`);
      const note = el("input");
      note.type = "text";
      note.name = "note";
      note.maxLength = 2000;
      note.placeholder = "what to do differently";
      note.value = notes.get(row.task_id) ?? "";
      note.addEventListener("input", () => notes.set(row.task_id, note.value));
      label.append(note);
      const past = at !== null;
      const retry = button(`Retry ${row.task_id}`, () => command("retry", row.task_id, note.value), "retry");
      const resolve = button(`Resolve ${row.task_id}`, () => command("resolve", row.task_id, note.value), "resolve");
      for (const b of [retry, resolve]) {
        b.disabled = past;
        if (past)
          b.title = "back to live to act on the run";
      }
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!past)
          command("retry", row.task_id, note.value);
      });
      form.append(label, retry, resolve);
      return form;
    });
    fill(byId("escalated"), forms);
  }
  function drawStream() {
    const list = byId("stream");
    const frames = streamOf(feed.messages, shownRun ?? feed.latestRun, who, at, STREAM_LINES);
    if (frames.length === 0) {
      fill(list, [el("li", "empty", caughtUp ? "nothing said yet" : "reading the journal…")]);
      return;
    }
    fill(list, frames.map(streamLine));
    if (pinned || at !== null)
      list.scrollTop = list.scrollHeight;
  }
  function watchScroll() {
    const list = byId("stream");
    list.addEventListener("scroll", () => {
      pinned = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
    });
  }
  function streamLine(frame) {
    const said = frame.said;
    const li = el("li", `level-${said?.level ?? "info"}`);
    li.dataset.seq = String(frame.seq);
    const agent = said?.agent_id ?? frame.sender;
    const task = said?.task_id ? ` [${said.task_id}]` : "";
    li.append(el("span", "seq", `#${frame.seq}`), el("span", "time", clock(frame.ts)), el("span", "from", `${agent}${task}`), el("span", "text", said?.text ?? frame.kind));
    return li;
  }
  function command(name, taskId, note, requirements) {
    asked += 1;
    const frame = { type: "command", id: `c${asked}`, command: name };
    if (taskId !== undefined)
      frame.task_id = taskId;
    if (note !== undefined)
      frame.note = note;
    if (requirements !== undefined)
      frame.requirements = requirements;
    if (send(frame))
      reply(`${name}${taskId ? ` ${taskId}` : ""}: sent…`, "info");
  }
  function stop() {
    const b = byId("stop");
    if (stopArmed === null) {
      b.textContent = "Really stop the run?";
      b.classList.add("armed");
      stopArmed = window.setTimeout(disarmStop, CONFIRM_MS);
      return;
    }
    disarmStop();
    command("stop");
  }
  function disarmStop() {
    if (stopArmed !== null)
      window.clearTimeout(stopArmed);
    stopArmed = null;
    const b = byId("stop");
    b.textContent = "Stop";
    b.classList.remove("armed");
  }
  function reply(text, level) {
    const line = byId("reply");
    line.textContent = text;
    line.className = `level-${level}`;
  }
  function listFolder(path) {
    if (socket === null || socket.readyState !== WebSocket.OPEN)
      return;
    asked += 1;
    send({ type: "list", id: `l${asked}`, path });
  }
  function drawListing(frame) {
    folder = frame.path;
    byId("folder").textContent = `${hello?.project ?? "project"}/${frame.path}`;
    const items = [];
    if (frame.path !== "") {
      const li = el("li");
      li.append(button("⬑ ..", () => listFolder(parentOf(frame.path)), "dir"));
      items.push(li);
    }
    const sorted = [...frame.entries].sort((a, b) => Number(b.dir) - Number(a.dir) || a.name.localeCompare(b.name));
    for (const entry of sorted) {
      const li = el("li");
      const path = join(frame.path, entry.name);
      if (entry.dir) {
        li.append(button(`▸ ${entry.name}/`, () => listFolder(path), "dir"));
      } else {
        const pick = button(entry.name, () => choose(path), `file${path === chosen ? " picked" : ""}`);
        pick.dataset.path = path;
        if (!/\.(md|markdown|txt)$/i.test(entry.name))
          pick.classList.add("other");
        li.append(pick, el("span", "size", `${entry.size} B`));
      }
      items.push(li);
    }
    if (sorted.length === 0)
      items.push(el("li", "empty", "empty folder"));
    fill(byId("files"), items);
  }
  function choose(path) {
    chosen = path;
    byId("chosen").textContent = path;
    byId("start").disabled = false;
    for (const b of byId("files").querySelectorAll("button.file")) {
      b.classList.toggle("picked", b.dataset.path === path);
    }
  }
  function setConnection(state) {
    const badge = byId("connection");
    badge.textContent = state;
    badge.className = `badge conn-${state.replace(" ", "-")}`;
  }
  function banner(text, level = "bad", again = false) {
    const box = byId("banner");
    if (text === null) {
      box.hidden = true;
      fill(box, []);
      return;
    }
    box.hidden = false;
    box.className = `level-${level}`;
    const parts = [el("span", "", text)];
    if (again)
      parts.push(button("Try again", connect));
    fill(box, parts);
  }
  function keys(event) {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) {
      if (target.id !== "slider")
        return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey)
      return;
    const moves = {
      ",": () => travel(-1, false),
      ".": () => travel(1, false),
      "[": () => travel(-1, true),
      "]": () => travel(1, true),
      Home: () => travelTo(runSeqs().seqs[0] ?? 0),
      End: () => travelTo(null),
      l: () => travelTo(null),
      a: () => pickAgent(null)
    };
    const move = moves[event.key];
    if (move !== undefined) {
      event.preventDefault();
      move();
    }
  }
  function start() {
    byId("travel-start").addEventListener("click", () => travelTo(runSeqs().seqs[0] ?? 0));
    byId("task-back").addEventListener("click", () => travel(-1, true));
    byId("msg-back").addEventListener("click", () => travel(-1, false));
    byId("msg-next").addEventListener("click", () => travel(1, false));
    byId("task-next").addEventListener("click", () => travel(1, true));
    byId("go-live").addEventListener("click", () => travelTo(null));
    byId("past-live").addEventListener("click", () => travelTo(null));
    const slider = byId("slider");
    slider.addEventListener("input", () => {
      const { seqs } = runSeqs();
      const seq = seqs[Number(slider.value)];
      if (seq !== undefined)
        travelTo(seq);
    });
    byId("pause").addEventListener("click", () => command("pause"));
    byId("resume").addEventListener("click", () => command("resume"));
    byId("stop").addEventListener("click", stop);
    byId("all-agents").addEventListener("click", () => pickAgent(null));
    byId("start").addEventListener("click", () => {
      if (chosen !== null)
        command("start", undefined, undefined, chosen);
    });
    document.addEventListener("keydown", keys);
    watchScroll();
    window.addEventListener("hashchange", () => {
      token = tokenFromHash(location.hash);
      if (socket === null && token !== null)
        connect();
    });
    token = tokenFromHash(location.hash);
    if (token === null) {
      setConnection("no token");
      banner("No token in this page's address. Open the link `autonoma serve` prints " + "(http://127.0.0.1:PORT/#token=…), or run `autonoma dashboard --web`.", "bad");
      return;
    }
    connect();
  }
  start();
})();
