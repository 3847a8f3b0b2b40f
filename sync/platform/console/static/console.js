// Fills the roster textarea from a chosen CSV file (the form posts text; no multipart needed).
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!input.matches("input[type=file][data-fill]")) return;
  const target = document.getElementById(input.dataset.fill);
  const file = input.files && input.files[0];
  if (!file || !target) return;
  file.text().then((text) => { target.value = text; });
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-print]");
  if (button) window.print();
});
