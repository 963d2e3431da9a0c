// The shared look of every page: Bootstrap, then our own rules on top, and
// Chart.js for the pages that draw charts (a canvas with data-chart holds its
// configuration as JSON).
import "bootstrap/dist/css/bootstrap.min.css";
import "./app.css";
import Collapse from "bootstrap/js/dist/collapse";
import Dropdown from "bootstrap/js/dist/dropdown";
import { Chart, registerables } from "chart.js";
import { blockEditors } from "./emails/blocks.js";

Chart.register(...registerables);

function drawCharts(root) {
  for (const canvas of root.querySelectorAll("canvas[data-chart]")) {
    if (canvas.dataset.drawn) continue;
    canvas.dataset.drawn = "1";
    new Chart(canvas, JSON.parse(canvas.dataset.chart));
  }
}

// A new custom field's key follows its label ("Annual revenue (€)" becomes
// annual_revenue, as pages/forms/settings.py's field_key_from_label makes it)
// until the key is edited by hand.
function fieldKey(label) {
  let key = label
    .normalize("NFKD")
    .replace(/\P{ASCII}/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (key && !/^[a-z]/.test(key)) key = `field_${key}`;
  return key.slice(0, 64).replace(/_+$/, "");
}

function followLabel(keyInput) {
  const label = document.getElementById(keyInput.dataset.keyFrom);
  if (!label || keyInput.dataset.following) return;
  keyInput.dataset.following = keyInput.value === "" || keyInput.value === fieldKey(label.value) ? "yes" : "no";
  label.addEventListener("input", () => {
    if (keyInput.dataset.following === "yes") keyInput.value = fieldKey(label.value);
  });
  keyInput.addEventListener("input", () => {
    keyInput.dataset.following = keyInput.value === "" ? "yes" : "no";
  });
}

// The leads list's bulk bar shows only the input the chosen action needs.
function bulkInputs(form) {
  const action = form.querySelector('[name="bulk-action"]');
  if (!action || form.dataset.bulkReady) return;
  form.dataset.bulkReady = "yes";
  const show = () => {
    for (const box of form.querySelectorAll("[data-bulk-for]")) {
      box.hidden = !box.dataset.bulkFor.split(" ").includes(action.value);
    }
  };
  action.addEventListener("change", show);
  show();
}

// A filter form folded behind a "Filters" button on a phone: the button tells
// how many filters are set (the sort order is not one).
function filterCount(form) {
  const badge = document.querySelector(`[data-bs-target="#${form.id}"] [data-filter-badge]`);
  if (!badge) return;
  const show = () => {
    const active = [...form.elements].filter(
      (el) => el.name && el.type !== "hidden" && el.name !== "sort" && !el.disabled && el.value !== "",
    ).length;
    badge.textContent = String(active);
    badge.hidden = active === 0;
  };
  form.addEventListener("change", show);
  form.addEventListener("input", show);
  show();
}

function enhance(root) {
  for (const form of root.querySelectorAll("form[data-filter-count]")) filterCount(form);
  for (const form of root.querySelectorAll("form[data-bulk-form]")) bulkInputs(form);
  for (const el of root.querySelectorAll("input[data-key-from]")) followLabel(el);
  for (const el of root.querySelectorAll('[data-bs-toggle="dropdown"]')) Dropdown.getOrCreateInstance(el);
  for (const el of root.querySelectorAll(".collapse")) Collapse.getOrCreateInstance(el, { toggle: false });
  drawCharts(root);
  blockEditors(root);
}

document.addEventListener("DOMContentLoaded", () => enhance(document));
document.addEventListener("htmx:afterSettle", (event) => enhance(event.target));

// A <dialog> whose content htmx loaded opens itself; the server closes it by
// sending the "leadflow:dialog-close" event (HX-Trigger) once the form is done.
document.addEventListener("htmx:afterSwap", (event) => {
  const dialog = event.target.closest("dialog");
  if (dialog && !dialog.open && event.target.childElementCount) dialog.showModal();
});
document.body.addEventListener("leadflow:dialog-close", () => {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
});
// A request cancelled by a newer one (hx-sync "this:replace", as the segment
// builder's live count does) is no failure, but htmx logs every error event to
// the console, unless the request's details already say what the error is. A
// request that is aborted on purpose says "none", so it stays quiet.
document.addEventListener("htmx:beforeSend", (event) => {
  const detail = event.detail;
  const xhr = detail.xhr;
  const abort = xhr.abort.bind(xhr);
  xhr.abort = () => {
    detail.error = null;
    abort();
  };
});
