import { useEffect, useRef } from "react";
import { nodeAriaLabel } from "../graph.js";

// The selected node's settings: a form the server renders, loaded through htmx
// into the panel this returns a ref to. The form reports its saved settings with
// a "leadflow:node-configured" event, which updates the node.
export default function useNodePanel({ initial, readOnly, types, singleId, nodesRef, record, setNodes, touched }) {
  const panel = useRef(null);

  useEffect(() => {
    const target = panel.current;
    if (!target) return undefined;
    // A form that answers after its node was deselected (or another node was
    // chosen) is not swapped in: the panel shows the selected node's form only.
    const stale = (event) => {
      const path = event.detail && event.detail.pathInfo && event.detail.pathInfo.requestPath;
      if (!path) return;
      // Only the panel's own loads name the node in the URL (a form's POST does not).
      const node = new URL(path, window.location.origin).searchParams.get("node");
      if (node !== null && node !== target.dataset.node) event.detail.shouldSwap = false;
    };
    target.addEventListener("htmx:beforeSwap", stale);
    return () => target.removeEventListener("htmx:beforeSwap", stale);
  }, []);
  useEffect(() => {
    const target = panel.current;
    if (!target) return;
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
      record();
      setNodes((list) =>
        list.map((n) =>
          n.id === detail.node
            ? {
                ...n,
                data: { ...n.data, config: detail.config, summary: detail.summary || "", problems: [] },
                ariaLabel: nodeAriaLabel(types[n.data.nodeType], detail.summary),
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
