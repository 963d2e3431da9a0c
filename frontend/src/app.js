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

function enhance(root) {
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
