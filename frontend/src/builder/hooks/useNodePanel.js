import { useEffect, useRef } from "react";
import { nodeAriaLabel } from "../graph.js";

// The form's fields as sent, to tell whether anything was typed since.
function serialize(form) {
  return new URLSearchParams(new FormData(form)).toString();
}

// The panel's form, if it shows one.
function panelForm(target) {
  return target ? target.querySelector("form.lf-node-form") : null;
}

// The settings typed into `form` and not answered yet are sent now (the step
// is being left): by fetch, since htmx drops the requests of a form that is
// gone, and the events of its answers no longer reach the page; the answer's
// "leadflow:node-configured" event updates the node as usual.
function flush(form) {
  if (!form || form.dataset.readonly === "1" || form.lfAnswered === serialize(form)) return;
  form.lfAnswered = serialize(form);
  fetch(form.getAttribute("hx-post"), {
    method: "POST",
    body: new FormData(form),
    credentials: "same-origin",
    headers: { "HX-Request": "true" },
  })
    .then((response) => {
      const header = response.headers.get("HX-Trigger");
      const detail = header ? JSON.parse(header)["leadflow:node-configured"] : null;
      if (detail) document.body.dispatchEvent(new CustomEvent("leadflow:node-configured", { detail }));
    })
    .catch(() => {});
}

// The selected node's settings: a form the server renders, loaded through htmx
// into the panel this returns a ref to. The form sends itself as it is typed
// in; each answer reports what was typed with a "leadflow:node-configured"
// event, which updates the node (its settings, its summary, or what is still
// missing), and the draft's autosave takes it from there.
export default function useNodePanel({ initial, readOnly, types, singleId, nodesRef, record, setNodes, touched }) {
  const panel = useRef(null);

  useEffect(() => {
    const target = panel.current;
    if (!target) return undefined;
    let focused = null;
    const beforeRequest = (event) => {
      const elt = event.detail && event.detail.elt;
      if (elt && elt.matches && elt.matches("form.lf-node-form")) elt.lfSent = serialize(elt);
    };
    const afterRequest = (event) => {
      const detail = event.detail || {};
      const elt = detail.elt;
      if (detail.successful && elt && elt.matches && elt.matches("form.lf-node-form")) elt.lfAnswered = elt.lfSent;
    };
    const beforeSwap = (event) => {
      const detail = event.detail || {};
      const path = detail.pathInfo && detail.pathInfo.requestPath;
      // A form that answers after its node was deselected (or another node was
      // chosen) is not swapped in: the panel shows the selected node's form only.
      // Only the panel's own loads name the node in the URL (a form's POST does not).
      const node = path ? new URL(path, window.location.origin).searchParams.get("node") : null;
      if (node !== null && node !== target.dataset.node) {
        detail.shouldSwap = false;
        return;
      }
      // An answer to settings that were typed on since is not swapped in: it
      // would undo the typing; the newer settings are on their way.
      const elt = detail.requestConfig && detail.requestConfig.elt;
      if (elt && elt.matches && elt.matches("form.lf-node-form") && elt.lfSent !== serialize(elt)) {
        detail.shouldSwap = false;
        return;
      }
      const active = document.activeElement;
      focused =
        active && target.contains(active) && active.name
          ? {
              name: active.name,
              value: active.type === "checkbox" || active.type === "radio" ? active.value : null,
              start: typeof active.selectionStart === "number" ? active.selectionStart : null,
              end: typeof active.selectionEnd === "number" ? active.selectionEnd : null,
            }
          : null;
    };
    const afterSwap = () => {
      const form = panelForm(target);
      if (form) form.lfSent = form.lfAnswered = serialize(form);
      if (!focused) return;
      const { name, value, start, end } = focused;
      focused = null;
      const candidates = [...target.querySelectorAll("[name]")].filter(
        (el) => el.name === name && (value === null || el.value === value),
      );
      const el = candidates[0];
      if (!el || el === document.activeElement) return;
      el.focus({ preventScroll: true });
      if (start !== null && typeof el.setSelectionRange === "function") {
        try {
          el.setSelectionRange(start, end);
        } catch {
          // Inputs like number have no selection.
        }
      }
    };
    // htmx wires a swapped-in form up a moment after the swap: from then on
    // it sends what is typed (`data-ready` says so, to tests among others).
    const loaded = (event) => {
      const form = event.target && event.target.closest ? event.target.closest("form.lf-node-form") : null;
      if (form) form.dataset.ready = "1";
    };
    target.addEventListener("htmx:load", loaded);
    target.addEventListener("htmx:beforeRequest", beforeRequest);
    target.addEventListener("htmx:afterRequest", afterRequest);
    target.addEventListener("htmx:beforeSwap", beforeSwap);
    target.addEventListener("htmx:afterSwap", afterSwap);
    return () => {
      target.removeEventListener("htmx:load", loaded);
      target.removeEventListener("htmx:beforeRequest", beforeRequest);
      target.removeEventListener("htmx:afterRequest", afterRequest);
      target.removeEventListener("htmx:beforeSwap", beforeSwap);
      target.removeEventListener("htmx:afterSwap", afterSwap);
    };
  }, []);
  useEffect(() => {
    const target = panel.current;
    if (!target) return;
    // Leaving a step keeps what was typed into it.
    if (!readOnly) flush(panelForm(target));
    target.dataset.node = singleId || "";
    if (!singleId) {
      target.innerHTML = "";
      return;
    }
    const node = nodesRef.current.find((n) => n.id === singleId);
    if (!node || !window.htmx) return;
    const params = new URLSearchParams({
      type: node.data.nodeType,
      node: node.id,
      config: JSON.stringify(node.data.config || {}),
    });
    if (readOnly) params.set("readonly", "1");
    window.htmx.ajax("GET", `${initial.urls.nodeForm}?${params}`, { target, swap: "innerHTML" });
  }, [singleId, initial, readOnly, nodesRef]);

  useEffect(() => {
    const configured = (event) => {
      const detail = event.detail || {};
      if (readOnly || !nodesRef.current.some((n) => n.id === detail.node)) return;
      const complete = detail.complete !== false;
      const summary = detail.summary || "";
      record();
      setNodes((list) =>
        list.map((n) =>
          n.id === detail.node
            ? {
                ...n,
                data: {
                  ...n.data,
                  config: detail.config,
                  summary,
                  complete,
                  pending: complete ? [] : detail.problems || [],
                  problems: [],
                },
                ariaLabel: nodeAriaLabel(types[n.data.nodeType], summary),
              }
            : n,
        ),
      );
      touched();
    };
    document.body.addEventListener("leadflow:node-configured", configured);
    return () => document.body.removeEventListener("leadflow:node-configured", configured);
  }, [readOnly, nodesRef, record, setNodes, touched, types]);

  return panel;
}
