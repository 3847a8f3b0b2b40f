// Safety ledger forms: the dishes follow the chosen slot (from the weekly menu); "all fine" in one tap.
"use strict";

const dishes = document.getElementById("dishes");
if (dishes) {
  let filled = dishes.value;
  for (const radio of document.querySelectorAll("input[name=slot]")) {
    radio.addEventListener("change", () => {
      // Only replace what the menu filled in, never what the caregiver typed.
      if (dishes.value === filled) {
        dishes.value = radio.dataset.dishes || "";
        filled = dishes.value;
      }
    });
  }
}

const allOk = document.getElementById("all-ok");
if (allOk) {
  allOk.addEventListener("click", () => {
    for (const radio of document.querySelectorAll("#inspection-form input[value=ok]")) radio.checked = true;
  });
}
