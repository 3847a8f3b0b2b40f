// Live updates for the check-in page: server-sent events, plus a periodic refresh so the page
// is right even after a long disconnection or a daemon restart (EventSource reconnects itself).
"use strict";

const $ = (id) => document.getElementById(id);

function hhmm(iso) {
  return iso ? iso.slice(11, 16) : "";
}

// 王秀英 -> 王*英: the recent list stays on screen where anyone walking by can read it.
function maskName(name) {
  const chars = Array.from(name || "");
  if (chars.length <= 1) return chars.join("");
  if (chars.length === 2) return chars[0] + "*";
  return chars[0] + "*".repeat(chars.length - 2) + chars[chars.length - 1];
}

async function refreshMissingCount() {
  const el = $("missing-count");
  if (!el) return;
  try {
    const resp = await fetch("/api/missing", { cache: "no-store" });
    if (resp.ok) el.textContent = (await resp.json()).count;
  } catch (e) {
    /* offline */
  }
}

function renderHeadcount(hc) {
  $("slot-label").textContent = hc.label || "今日无服务";
  $("slot-hours").textContent = hc.hours || "";
  $("slot-state").textContent = hc.open ? "" : "未到服务时间";
  $("served").textContent = hc.served;
  // 本点 N · 外点 M: shown where visitors are accepted (or one was served anyway).
  $("served-split").hidden = !(hc.roaming || hc.visitors);
  $("served-local").textContent = hc.local;
  $("served-visitors").textContent = hc.visitors;
  const list = $("recent");
  list.replaceChildren(
    ...hc.recent.map((r) => {
      const li = document.createElement("li");
      const cells = [["name", maskName(r.name)]];
      if (r.visitor) cells.push(["visitor", "外点"]);
      cells.push(["method", r.method_label], ["time", hhmm(r.at)]);
      for (const [cls, text] of cells) {
        const span = document.createElement("span");
        span.className = cls;
        span.textContent = text;
        li.append(span);
      }
      return li;
    }),
  );
}

function renderLast(ev) {
  const box = $("last");
  box.className = "last outcome-" + ev.outcome;
  $("last-name").textContent = ev.elder_name || "";
  $("last-message").textContent = ev.message;
  $("last-meta").textContent = ev.method_label + " · " + hhmm(ev.at);
}

async function refreshHeadcount() {
  try {
    const resp = await fetch("/api/headcount", { cache: "no-store" });
    if (resp.ok) renderHeadcount(await resp.json());
    refreshMissingCount();
  } catch (e) {
    /* offline: the banner already says so */
  }
}

const STATUS_TEXT = { ok: "正常", warn: "请留意", bad: "需要处理" };
const STATE_MARK = { ok: "✓", off: "–", warn: "!", bad: "✗" };

// The status bar: every part of the terminal in plain words; below it what to do, if anything.
function renderStatusBar(bar) {
  const el = $("status");
  el.className = "status status-" + bar.state;
  el.textContent = STATUS_TEXT[bar.state] || bar.state;
  $("status-items").replaceChildren(
    ...bar.items.map((item) => {
      const li = document.createElement("li");
      li.className = "item item-" + item.state;
      li.dataset.key = item.key;
      const mark = document.createElement("span");
      mark.className = "mark";
      mark.textContent = STATE_MARK[item.state] || "";
      li.append(mark, document.createTextNode(item.text));
      return li;
    }),
  );
  const todo = $("status-todo");
  todo.textContent = bar.todo.join("；");
  todo.hidden = bar.todo.length === 0;
  const reminder = $("reminder");
  reminder.textContent = bar.reminders.length ? "提醒：" + bar.reminders.join("；") : "";
  reminder.hidden = bar.reminders.length === 0;
  const books = bar.book_reminders || [];
  const bookReminder = $("book-reminder");
  bookReminder.textContent = books.length ? "账目：" + books.join("；") : "";
  bookReminder.hidden = books.length === 0;
}

async function refreshHealth() {
  try {
    const resp = await fetch("/api/statusbar", { cache: "no-store" });
    if (resp.ok) renderStatusBar(await resp.json());
  } catch (e) {
    /* shown by the offline banner */
  }
}

// The site's time zone, not the browser's: the touchscreen may boot with UTC.
const clockFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: document.body.dataset.timezone,
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

function tickClock() {
  $("clock").textContent = clockFormat.format(new Date());
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    $("offline").hidden = true;
    refreshHeadcount();
    refreshHealth();
  });
  source.addEventListener("error", () => {
    $("offline").hidden = false;
  });
  source.addEventListener("checkin", (msg) => {
    const ev = JSON.parse(msg.data);
    renderLast(ev);
    if (ev.outcome === "accepted") refreshHeadcount();
  });
}

tickClock();
setInterval(tickClock, 10000);
setInterval(refreshHeadcount, 30000);
setInterval(refreshHealth, 10000);
connect();
