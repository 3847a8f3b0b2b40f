// On-screen pads for forms on a terminal without a keyboard: digits, dates, pick lists, and the
// pinyin-initial letter pad for choosing an elder. A USB keyboard still works (inputmode=none
// only keeps a virtual keyboard away).
"use strict";

const pad = document.getElementById("touchpad");

function button(label, onClick, cls = "btn") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function formatDate(digits) {
  const d = digits.slice(0, 8);
  if (d.length <= 4) return d;
  if (d.length <= 6) return `${d.slice(0, 4)}-${d.slice(4)}`;
  return `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}`;
}

function openPad(input) {
  pad.replaceChildren();
  pad.hidden = false;
  const kind = input.dataset.pad;
  const title = document.createElement("div");
  title.className = "pad-title";
  title.textContent = input.closest(".form-row").querySelector("label").textContent;
  pad.append(title);
  const shown = document.createElement("div");
  shown.className = "pad-value";
  shown.textContent = input.value;
  pad.append(shown);
  const set = (value) => { input.value = value; shown.textContent = value; };
  const grid = document.createElement("div");
  grid.className = kind === "pick" ? "pad-choices" : "pad-keys";
  if (kind === "pick") {
    for (const choice of JSON.parse(input.dataset.choices || "[]")) {
      grid.append(button(choice, () => { set(choice); closePad(); }, "btn pad-choice"));
    }
    pad.append(grid);
    pad.append(pinyinKeyboard(input, set));
  } else {
    if (kind === "date") {
      grid.append(button("今天", () => set(input.dataset.today), "btn pad-key"));
      grid.append(button("昨天", () => set(input.dataset.yesterday), "btn pad-key"));
    }
    const keys = kind === "date" ? ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
      : ["1", "2", "3", "4", "5", "6", "7", "8", "9", ".", "0"];
    for (const key of keys) {
      grid.append(button(key, () => {
        if (kind === "date") set(formatDate(input.value.replace(/-/g, "") + key));
        else set(input.value + key);
      }, "btn pad-key"));
    }
    grid.append(button("⌫", () => {
      if (kind === "date") set(formatDate(input.value.replace(/-/g, "").slice(0, -1)));
      else set(input.value.slice(0, -1));
    }, "btn pad-key"));
  }
  if (kind !== "pick") pad.append(grid);
  const row = document.createElement("div");
  row.className = "pad-actions";
  row.append(button("清空", () => set(""), "btn"));
  row.append(button("确定", closePad, "btn btn-primary pad-ok"));
  pad.append(row);
}

// A new name by touch: tap the pinyin letters of one character, then the character.
function pinyinKeyboard(input, set) {
  const box = document.createElement("div");
  box.className = "pinyin";
  const letters = document.createElement("div");
  letters.className = "pinyin-letters";
  const found = document.createElement("div");
  found.className = "pinyin-candidates";
  const keys = document.createElement("div");
  keys.className = "pinyin-keys";
  let typed = "";
  async function refresh() {
    letters.textContent = typed ? typed : "拼音：";
    found.replaceChildren();
    if (!typed) return;
    const resp = await fetch(`/api/pinyin?s=${encodeURIComponent(typed)}`, { cache: "no-store" });
    if (!resp.ok) return;
    for (const char of (await resp.json()).candidates) {
      found.append(button(char, () => { set(input.value + char); typed = ""; refresh(); }, "btn pinyin-char"));
    }
  }
  for (const letter of "abcdefghijklmnopqrstuvwxyz") {
    keys.append(button(letter, () => { if (typed.length < 6) { typed += letter; refresh(); } }, "btn pinyin-key"));
  }
  keys.append(button("⌫", () => {
    if (typed) typed = typed.slice(0, -1); else set(input.value.slice(0, -1));
    refresh();
  }, "btn pinyin-key"));
  box.append(letters, found, keys);
  refresh();
  return box;
}

function closePad() {
  pad.hidden = true;
  pad.replaceChildren();
}

for (const input of document.querySelectorAll("input[data-pad]")) {
  input.addEventListener("click", () => openPad(input));
  input.addEventListener("focus", () => openPad(input));
}

// Rows shown only for some answers of another field (食材种类 only for 食材, ...).
function applyWhen() {
  for (const row of document.querySelectorAll(".form-row[data-when]")) {
    const chosen = document.querySelector(`input[name="${row.dataset.when}"]:checked`);
    const show = chosen && row.dataset.whenValues.split(",").includes(chosen.value);
    row.hidden = !show;
    for (const el of row.querySelectorAll("input")) el.disabled = !show;
  }
}
document.addEventListener("change", applyWhen);
applyWhen();

// Choosing an elder: letters filter by the first pinyin initial, a tap picks.
for (const letterPad of document.querySelectorAll(".letter-pad[data-target]")) {
  const list = document.getElementById(letterPad.dataset.target);
  const hidden = letterPad.parentElement.querySelector("input[type=hidden]");
  letterPad.addEventListener("click", (event) => {
    const letter = event.target.dataset && event.target.dataset.letter;
    if (letter === undefined) return;
    for (const b of list.querySelectorAll(".elder-pick")) {
      b.hidden = letter !== "" && !(b.dataset.py || "").toUpperCase().startsWith(letter);
    }
  });
  list.addEventListener("click", (event) => {
    const pick = event.target.closest(".elder-pick");
    if (!pick) return;
    hidden.value = pick.dataset.id;
    for (const b of list.querySelectorAll(".elder-pick")) b.classList.toggle("picked", b === pick);
  });
}

// The elder search: each letter is added to the pinyin initials and the list is fetched again.
for (const letters of document.querySelectorAll(".letter-pad[data-search]")) {
  const q = document.getElementById(letters.dataset.search);
  letters.addEventListener("click", (event) => {
    const letter = event.target.dataset && event.target.dataset.letter;
    if (letter === undefined) return;
    q.value = letter === "⌫" ? q.value.slice(0, -1) : q.value + letter;
    q.form.submit();
  });
}

// A receipt photo from the terminal's camera: the server keeps it, the form keeps its hash.
const snap = document.getElementById("receipt-snap");
if (snap) {
  snap.addEventListener("click", async () => {
    const state = document.getElementById("receipt-state");
    const token = document.querySelector("meta[name=csrf-token]").content;
    const resp = await fetch("/books/receipt", { method: "POST", headers: { "X-CSRF-Token": token } });
    const answer = await resp.json();
    if (resp.ok) {
      document.getElementById("f-receipt_sha256").value = answer.receipt_sha256;
      state.textContent = "已拍";
    } else {
      state.textContent = answer.detail || "拍照失败";
    }
  });
}

document.body.dataset.touchpad = "ready"; // for tests: the pads are wired
