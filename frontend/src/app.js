// The shared look of every page: Bootstrap, then our own rules on top, and
// Chart.js for the pages that draw charts (a canvas with data-chart holds its
// configuration as JSON).
import "bootstrap/dist/css/bootstrap.min.css";
import "./app.css";
import Collapse from "bootstrap/js/dist/collapse";
import Dropdown from "bootstrap/js/dist/dropdown";
import { Chart, registerables } from "chart.js";

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
}

document.addEventListener("DOMContentLoaded", () => enhance(document));
document.addEventListener("htmx:afterSettle", (event) => enhance(event.target));

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
