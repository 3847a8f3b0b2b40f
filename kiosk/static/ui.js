// The caregiver's pages: live refresh of the missing list on every check-in event.
"use strict";

function renderMissing(m) {
  document.getElementById("missing-count").textContent = m.count;
  const list = document.getElementById("missing-list");
  const items = m.missing.map((e) => {
    const li = document.createElement("li");
    li.className = "row";
    li.dataset.elder = e.elder_id;
    const cells = [["name", e.name], ["group", e.group]];
    for (const [cls, text] of cells) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    let phone;
    if (m.masked) {
      phone = document.createElement("span");
    } else {
      phone = document.createElement("a");
      phone.className = "btn";
      phone.href = "tel:" + e.phone;
    }
    phone.classList.add("phone");
    phone.textContent = (m.masked ? "" : "📞 ") + e.phone;
    li.append(phone);
    const seen = document.createElement("span");
    seen.className = "seen";
    seen.textContent = "来过 " + e.days_eaten + " 天" + (e.last_seen ? "，上次 " + e.last_seen.slice(5) : "");
    li.append(seen);
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "row empty";
    li.textContent = "常来的老人都到了";
    items.push(li);
  }
  list.replaceChildren(...items);
}

async function refreshMissing() {
  try {
    const resp = await fetch("/api/missing" + location.search, { cache: "no-store" });
    if (resp.ok) renderMissing(await resp.json());
  } catch (e) {
    /* the daemon is restarting: EventSource reconnects and we refresh on open */
  }
}

if (document.querySelector("[data-live=missing]")) {
  const source = new EventSource("/api/events");
  source.addEventListener("open", refreshMissing);
  source.addEventListener("checkin", (msg) => {
    if (JSON.parse(msg.data).outcome === "accepted") refreshMissing();
  });
  setInterval(refreshMissing, 30000);
}

// On-screen PIN pad (the touchscreen may have no keyboard).
for (const b of document.querySelectorAll(".pinpad [data-digit]")) {
  b.addEventListener("click", () => {
    const pin = document.getElementById("pin");
    pin.value = b.dataset.digit === "clear" ? "" : (pin.value + b.dataset.digit).slice(0, 8);
  });
}
