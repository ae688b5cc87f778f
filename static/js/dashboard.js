// The dashboard's only script besides htmx: copy buttons ([data-copy] names the element
// whose text is copied). Kept in a file, not inline, so a strict Content-Security-Policy holds.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy).textContent;
  navigator.clipboard.writeText(text).then(() => { button.textContent = "Copied"; });
});
