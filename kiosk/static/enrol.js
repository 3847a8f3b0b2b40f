// Face enrolment (live preview + quality hint + enrol) and card binding ("请刷卡" until a tap).
"use strict";

const csrfToken = () => document.querySelector("meta[name=csrf-token]").content;

async function post(url, form) {
  const resp = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrfToken() },
    body: new URLSearchParams(new FormData(form)),
  });
  let body = {};
  try {
    body = await resp.json();
  } catch (e) {
    /* not JSON */
  }
  return { status: resp.status, body };
}

function showResult(el, ok, text) {
  el.hidden = false;
  el.className = "flash " + (ok ? "flash-ok" : "flash-error");
  el.textContent = text;
}

// --- face -------------------------------------------------------------------------------
const preview = document.getElementById("preview");
if (preview) {
  // A fresh snapshot every half second (never stored: the server encodes it in memory).
  setInterval(() => {
    preview.src = "/api/camera/snapshot.jpg?t=" + Date.now();
  }, 500);
  const quality = document.getElementById("quality");
  async function checkQuality() {
    try {
      const resp = await fetch("/api/enrol/quality", { cache: "no-store" });
      const q = await resp.json();
      if (q.state !== "busy") {
        quality.textContent = q.hint;
        quality.className = "quality " + (q.state === "ok" ? "quality-ok" : "quality-hint");
        quality.dataset.state = q.state;
      }
    } catch (e) {
      /* daemon restarting */
    }
    setTimeout(checkQuality, 1000);
  }
  checkQuality();
}

const enrolForm = document.getElementById("enrol-form");
if (enrolForm) {
  enrolForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = document.getElementById("enrol-submit");
    const out = document.getElementById("enrol-result");
    button.disabled = true;
    showResult(out, true, "正在登记，请老人别动…");
    try {
      const { status, body } = await post("/api/enrol", enrolForm);
      showResult(out, body.outcome === "enrolled", body.message || body.detail || "登记失败（" + status + "）");
    } finally {
      button.disabled = false;
    }
  });
}

// --- card -------------------------------------------------------------------------------
const bindForm = document.getElementById("bind-form");
if (bindForm) {
  const prompt = document.getElementById("bind-prompt");
  const out = document.getElementById("bind-result");
  let lastShown = null;
  function render(state) {
    if (state.armed) {
      prompt.className = "bind-prompt";
      prompt.textContent = "请刷卡（还有 " + state.seconds_left + " 秒）";
    } else {
      prompt.className = "bind-prompt idle";
      prompt.textContent = "点“开始绑卡”，再把新卡放到读卡器上";
    }
    const last = state.last;
    if (last && JSON.stringify(last) !== lastShown) {
      lastShown = JSON.stringify(last);
      showResult(out, last.ok, last.message);
    }
  }
  async function poll() {
    try {
      const resp = await fetch("/api/card-binding", { cache: "no-store" });
      if (resp.ok) render(await resp.json());
    } catch (e) {
      /* daemon restarting */
    }
  }
  document.getElementById("bind-start").addEventListener("click", async () => {
    out.hidden = true;
    lastShown = null;
    const { status, body } = await post("/api/card-binding", bindForm);
    if (status === 200) render(body);
    else showResult(out, false, body.detail || "无法开始绑卡（" + status + "）");
  });
  document.getElementById("bind-cancel").addEventListener("click", async () => {
    const { body } = await post("/api/card-binding/cancel", bindForm);
    render(body);
  });
  setInterval(poll, 500);
  poll();
}
