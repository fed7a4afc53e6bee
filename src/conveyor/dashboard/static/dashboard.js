// Conveyor dashboard: keeps server-rendered pages live from the /live event stream.
// Every value is written with textContent, never as HTML.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  if (page === "login") return;

  function localTimes(root) {
    root.querySelectorAll("time[data-ts]").forEach(function (el) {
      el.textContent = shown(parseFloat(el.dataset.ts), el.closest("td"));
      el.title = el.getAttribute("datetime");
    });
  }

  // In tables: the time of day (with the date when not today); elsewhere date and time.
  function shown(ts, inTable) {
    var d = new Date(ts * 1000);
    var time = d.toLocaleTimeString(undefined, {hour12: false}) + "." +
      String(d.getMilliseconds()).padStart(3, "0");
    if (inTable && d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString() + " " + time;
  }

  function seconds(v) {
    if (v === null || v === undefined) return "";
    return v < 1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(2) + " s";
  }

  function timeEl(ts) {
    var t = document.createElement("time");
    if (!ts) return t;
    t.dataset.ts = ts;
    t.setAttribute("datetime", new Date(ts * 1000).toISOString());
    t.textContent = shown(ts, true);
    return t;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function link(href, text, cls) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (cls) a.className = cls;
    return a;
  }

  function badge(state) {
    var s = document.createElement("span");
    s.className = "badge state-" + state;
    s.dataset.col = "state";
    s.textContent = state;
    return s;
  }

  // -- figures in the header and on the overview ---------------------------------------
  function figures(o) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var v = o[el.dataset.live];
      if (v !== undefined) el.textContent = v;
    });
    var depths = document.querySelector("#queue-depths tbody");
    if (depths) {
      depths.textContent = "";
      o.queues.forEach(function (q) {
        var tr = document.createElement("tr");
        cell(tr, link("/queues", q.queue));
        [q.ready, q.in_flight, q.delayed, q.dead].forEach(function (n) { cell(tr, String(n), "num"); });
        depths.appendChild(tr);
      });
    }
  }

  // -- tasks list ------------------------------------------------------------------------
  var list = document.getElementById("tasks");

  function matches(t) {
    var f = list.dataset;
    if (f.filteredTime === "1") return false;
    if (f.name && t.name !== f.name) return false;
    if (f.state && t.state !== f.state) return false;
    if (f.worker && t.worker !== f.worker) return false;
    if (f.id && t.id.indexOf(f.id) !== 0) return false;
    return true;
  }

  function taskRow(t) {
    var tr = document.createElement("tr");
    tr.dataset.id = t.id;
    tr.dataset.n = t.n;
    cell(tr, badge(t.state));
    cell(tr, t.name).dataset.col = "name";
    cell(tr, link("/tasks/" + encodeURIComponent(t.id), t.id, "mono"));
    cell(tr, t.worker).dataset.col = "worker";
    cell(tr, timeEl(t.seen_at)).dataset.col = "seen";
    cell(tr, seconds(t.runtime), "num").dataset.col = "runtime";
    cell(tr, String(t.retries), "num").dataset.col = "retries";
    var args = t.args + (t.kwargs && t.kwargs !== "{}" ? " " + t.kwargs : "");
    cell(tr, args, "mono clip").dataset.col = "args";
    cell(tr, t.error || t.result, "mono clip").dataset.col = "outcome";
    tr.classList.add("fresh");
    return tr;
  }

  function tasks(rows, reset) {
    if (!list) return;
    var body = list.tBodies[0];
    if (reset && list.dataset.liveList === "1") { refreshList(); return; }
    rows.sort(function (a, b) { return a.n - b.n; });
    rows.forEach(function (t) {
      var old = body.querySelector('tr[data-id="' + CSS.escape(t.id) + '"]');
      var wanted = matches(t);
      if (old) {
        if (!wanted && list.dataset.state) { old.remove(); return; }
        old.replaceWith(taskRow(t));
      } else if (wanted && list.dataset.liveList === "1") {
        var empty = body.querySelector("tr.empty");
        if (empty) empty.remove();
        body.insertBefore(taskRow(t), body.firstChild);
        while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
      }
    });
  }

  function refreshList() {
    fetch(location.href, {headers: {Accept: "text/html"}}).then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("#tasks tbody");
        if (fresh) { list.tBodies[0].replaceWith(fresh); localTimes(list); }
      });
  }

  // -- workers -----------------------------------------------------------------------------
  function workers(ws) {
    var body = document.querySelector("#workers tbody");
    if (!body) return;
    body.textContent = "";
    ws.forEach(function (w) {
      var tr = document.createElement("tr");
      tr.dataset.worker = w.name;
      tr.className = w.online ? "online" : "offline";
      var b = document.createElement("span");
      b.className = "badge " + (w.online ? "ok" : "off");
      b.textContent = w.online ? "online" : "offline";
      cell(tr, b);
      cell(tr, link("/tasks?worker=" + encodeURIComponent(w.name), w.name));
      cell(tr, w.hostname);
      cell(tr, w.pids.join(", "));
      cell(tr, w.pool);
      cell(tr, String(w.concurrency), "num");
      cell(tr, w.queues.join(", "));
      var active = cell(tr, w.active.length ? "" : "–");
      w.active.forEach(function (a, i) {
        if (i) active.appendChild(document.createTextNode(", "));
        active.appendChild(link("/tasks/" + encodeURIComponent(a.id), a.task));
      });
      cell(tr, String(w.processed), "num");
      cell(tr, String(w.failed), "num");
      cell(tr, timeEl(w.last_heartbeat));
      body.appendChild(tr);
    });
  }

  // -- queues ------------------------------------------------------------------------------
  function queues(qs) {
    var body = document.querySelector("#queues tbody");
    if (!body) return;
    qs.forEach(function (q) {
      var tr = body.querySelector('tr[data-queue="' + CSS.escape(q.queue) + '"]');
      if (!tr) return;
      var values = [q.ready, q.in_flight, q.delayed, q.dead, q.received_rate.toFixed(2), q.finished_rate.toFixed(2)];
      values.forEach(function (v, i) { tr.cells[i + 1].textContent = String(v); });
    });
  }

  // -- one task ----------------------------------------------------------------------------
  var taskId = document.body.dataset.taskId;
  function taskPage(rows) {
    if (!taskId || !rows.some(function (t) { return t.id === taskId; })) return;
    var url = location.pathname + "?fragment=1";
    fetch(url).then(function (r) { return r.text(); }).then(function (html) {
      var box = document.getElementById("task-detail");
      var doc = new DOMParser().parseFromString(html, "text/html");
      box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
      localTimes(box);
    });
  }

  // -- charts ------------------------------------------------------------------------------
  function charts() {
    var box = document.getElementById("charts");
    if (!box) return;
    fetch("/partials/charts").then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
    });
  }

  localTimes(document);
  var dot = document.getElementById("live-dot");
  var source = new EventSource(list || taskId ? "/live?rows=1" : "/live");
  source.addEventListener("open", function () { if (dot) dot.className = "dot on"; });
  source.addEventListener("error", function () { if (dot) dot.className = "dot"; });
  source.addEventListener("update", function (e) {
    var u = JSON.parse(e.data);
    figures(u.overview);
    tasks(u.tasks, u.reset);
    workers(u.workers);
    queues(u.overview.queues);
    taskPage(u.tasks);
    document.body.dataset.liveVersion = u.v;
  });
  if (document.getElementById("charts")) setInterval(charts, 30000);
})();
