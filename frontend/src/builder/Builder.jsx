import { Background, Controls, MiniMap, ReactFlow, useEdgesState, useNodesState, useReactFlow } from "@xyflow/react";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { formatNumber, gettext, interpolate, ngettext } from "../i18n.js";
import { call, errorLines } from "./api.js";
import DryRunPanel from "./DryRunPanel.jsx";
import FlowNode from "./FlowNode.jsx";
import NodeLeads from "./NodeLeads.jsx";
import Palette, { DRAG_TYPE } from "./Palette.jsx";
import { NodeLeadsContext, TypesContext } from "./context.js";
import {
  canvasEdge,
  connectionProblem,
  layered,
  newNodeId,
  nodeAriaLabel,
  toCanvas,
  toGraph,
  withoutMaskedSecrets,
} from "./graph.js";

const nodeTypesForFlow = { leadflow: FlowNode };
const AUTOSAVE_MS = 1200;
const STATS_MS = 5000;
function saveLabel(state) {
  switch (state) {
    case "saved":
      return gettext("All changes saved");
    case "unsaved":
      return gettext("Unsaved changes");
    case "saving":
      return gettext("Saving…");
    case "error":
      return gettext("Not saved");
    case "conflict":
      return gettext("Changed elsewhere");
    default:
      return state;
  }
}
function statusLabel(status) {
  switch (status) {
    case "draft":
      return gettext("draft");
    case "active":
      return gettext("active");
    case "paused":
      return gettext("paused");
    case "archived":
      return gettext("archived");
    default:
      return status;
  }
}
// React Flow's own labels (controls, minimap, keyboard help), in our words.
function reactFlowLabels() {
  return {
    "node.a11yDescription.default": gettext(
      "Press Enter to select this node, arrow keys to move it, Delete to remove it.",
    ),
    "node.a11yDescription.keyboardDisabled": gettext(
      "Press Enter or Space to select a node, then Delete to remove it or Escape to cancel.",
    ),
    "node.a11yDescription.ariaLiveMessage": ({ direction, x, y }) =>
      interpolate(
        gettext("Moved the selected node %(direction)s. New position: x %(x)s, y %(y)s."),
        { direction: directionLabel(direction), x, y },
        true,
      ),
    "edge.a11yDescription.default": gettext(
      "Press Enter or Space to select a connection, then Delete to remove it or Escape to cancel.",
    ),
    "controls.ariaLabel": gettext("Canvas controls"),
    "controls.zoomIn.ariaLabel": gettext("Zoom in"),
    "controls.zoomOut.ariaLabel": gettext("Zoom out"),
    "controls.fitView.ariaLabel": gettext("Fit the flow to the view"),
    "controls.interactive.ariaLabel": gettext("Lock or unlock the canvas"),
    "minimap.ariaLabel": gettext("Overview of the flow"),
    "handle.ariaLabel": gettext("Connection point"),
  };
}
function directionLabel(direction) {
  switch (direction) {
    case "up":
      return gettext("up");
    case "down":
      return gettext("down");
    case "left":
      return gettext("left");
    case "right":
      return gettext("right");
    default:
      return direction;
  }
}
const PATH_EDGE_STYLE = { stroke: "#16a34a", strokeWidth: 3 };
// Smaller than React Flow's default, so it hides less of the canvas at 1280×800.
const MINIMAP_SIZE = { width: 150, height: 100 };

function problemLines(byPath) {
  const lines = [];
  for (const [path, messages] of Object.entries(byPath || {})) {
    for (const message of messages) {
      const where = path.replace(/^config\.?/, "");
      lines.push(where && where !== "id" && where !== "type" ? `${where}: ${message}` : message);
    }
  }
  return lines;
}

function typing(target) {
  const tag = target && target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
}

export default function Builder({ initial }) {
  const types = useMemo(() => Object.fromEntries(initial.nodeTypes.map((t) => [t.key, t])), [initial]);
  const start = useMemo(() => toCanvas(initial.graph, types, initial.summaries), [initial, types]);
  const [nodes, setNodes, onNodesChangeBase] = useNodesState(start.nodes);
  const [edges, setEdges, onEdgesChangeBase] = useEdgesState(start.edges);
  const [saveState, setSaveState] = useState("saved");
  const [notice, setNotice] = useState(null);
  const [graphProblems, setGraphProblems] = useState([]);
  const [flowStatus, setFlowStatus] = useState(initial.flow.status);
  const [versionNumber, setVersionNumber] = useState(initial.flow.version);
  const [changes, setChanges] = useState(0);
  // The right-hand column: the node settings (null), the test ("test"), or the
  // leads behind a node's count ({ node, status }).
  const [side, setSide] = useState(null);
  const [testing, setTesting] = useState(false);
  const [testOutcome, setTestOutcome] = useState(null);
  const [onPath, setOnPath] = useState(null);
  const readOnly = Boolean(initial.readOnly);
  const wrapper = useRef(null);
  const panel = useRef(null);
  const revision = useRef(initial.revision);
  const nodesRef = useRef(nodes);
  const edgesRef = useRef(edges);
  const past = useRef([]);
  const future = useRef([]);
  const clipboard = useRef(null);
  const saving = useRef(null);
  const savedChanges = useRef(0);
  const conflict = useRef(false);
  const changesRef = useRef(changes);
  const { screenToFlowPosition, fitView } = useReactFlow();
  // The callbacks below read the latest graph through these refs, so that they
  // keep their identity (React Flow re-renders less) and never act on a stale one.
  // They are updated once a render is committed, before any handler or effect runs.
  useLayoutEffect(() => {
    nodesRef.current = nodes;
    edgesRef.current = edges;
    changesRef.current = changes;
  });

  const touched = useCallback(() => {
    setChanges((n) => n + 1);
    setSaveState((s) => (s === "conflict" ? s : "unsaved"));
  }, []);

  // --- undo / redo ------------------------------------------------------------
  const snapshot = () => ({
    nodes: nodesRef.current.map((n) => ({ ...n, selected: false })),
    edges: edgesRef.current.map((e) => ({ ...e, selected: false })),
  });
  const record = useCallback(() => {
    past.current.push(snapshot());
    if (past.current.length > 100) past.current.shift();
    future.current = [];
  }, []);
  const undo = useCallback(() => {
    const previous = past.current.pop();
    if (!previous) return;
    future.current.push(snapshot());
    setNodes(previous.nodes);
    setEdges(previous.edges);
    touched();
  }, [setNodes, setEdges, touched]);
  const redo = useCallback(() => {
    const next = future.current.pop();
    if (!next) return;
    past.current.push(snapshot());
    setNodes(next.nodes);
    setEdges(next.edges);
    touched();
  }, [setNodes, setEdges, touched]);

  // --- changes from the canvas -------------------------------------------------
  const onNodesChange = useCallback(
    (list) => {
      const structural = list.some((c) => c.type === "remove" || c.type === "add" || c.type === "replace");
      if (structural) record();
      onNodesChangeBase(list);
      if (structural || list.some((c) => c.type === "position" && c.dragging === false)) touched();
    },
    [onNodesChangeBase, record, touched],
  );
  const onEdgesChange = useCallback(
    (list) => {
      const structural = list.some((c) => c.type === "remove" || c.type === "add" || c.type === "replace");
      if (structural) record();
      onEdgesChangeBase(list);
      if (structural) touched();
    },
    [onEdgesChangeBase, record, touched],
  );
  const isValidConnection = useCallback(
    (connection) => connectionProblem(connection, nodesRef.current, edgesRef.current, types) === null,
    [types],
  );
  const onConnect = useCallback(
    (connection) => {
      const problem = connectionProblem(connection, nodesRef.current, edgesRef.current, types);
      if (problem) {
        setNotice({ kind: "warning", text: problem });
        return;
      }
      record();
      const handle = connection.sourceHandle || "next";
      const edge = canvasEdge({
        id: `${connection.source}-${handle}-${connection.target}`,
        source: connection.source,
        sourceHandle: handle,
        target: connection.target,
      });
      setEdges((list) => [...list, edge]);
      touched();
    },
    [types, record, setEdges, touched],
  );

  // --- adding nodes -----------------------------------------------------------------
  const addNode = useCallback(
    (typeKey, position) => {
      const type = types[typeKey];
      if (!type || readOnly) return;
      let at = position;
      if (!at) {
        const box = wrapper.current.getBoundingClientRect();
        const centre = screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 3 });
        const offset = (nodesRef.current.length % 6) * 24;
        at = { x: centre.x - 120 + offset, y: centre.y + offset };
      }
      record();
      const id = newNodeId(typeKey, nodesRef.current);
      const config = {};
      for (const [name, spec] of Object.entries(type.config_schema.properties || {})) {
        if (spec.default !== undefined) config[name] = spec.default;
      }
      const node = {
        id,
        type: "leadflow",
        position: at,
        selected: true,
        data: { nodeType: typeKey, config, summary: "", problems: [] },
        ariaLabel: nodeAriaLabel(type, ""),
      };
      setNodes((list) => [...list.map((n) => ({ ...n, selected: false })), node]);
      touched();
    },
    [types, readOnly, screenToFlowPosition, record, setNodes, touched],
  );
  const onDragOver = useCallback((event) => {
    if (event.dataTransfer.types.includes(DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
    }
  }, []);
  const onDrop = useCallback(
    (event) => {
      const key = event.dataTransfer.getData(DRAG_TYPE);
      if (!key) return;
      event.preventDefault();
      const at = screenToFlowPosition({ x: event.clientX, y: event.clientY });
      addNode(key, { x: at.x - 120, y: at.y - 30 });
    },
    [addNode, screenToFlowPosition],
  );

  // --- copy / paste / keys --------------------------------------------------------
  const copy = useCallback(() => {
    const chosen = nodesRef.current.filter((n) => n.selected);
    if (!chosen.length) return;
    const ids = new Set(chosen.map((n) => n.id));
    clipboard.current = {
      nodes: chosen,
      edges: edgesRef.current.filter((e) => ids.has(e.source) && ids.has(e.target)),
    };
  }, []);
  const paste = useCallback(() => {
    const copied = clipboard.current;
    if (!copied || readOnly) return;
    record();
    const taken = [...nodesRef.current];
    const renamed = new Map();
    const fresh = copied.nodes.map((n) => {
      const id = newNodeId(n.data.nodeType, taken);
      taken.push({ id });
      renamed.set(n.id, id);
      return {
        ...n,
        id,
        selected: true,
        position: { x: n.position.x + 40, y: n.position.y + 40 },
        data: {
          ...n.data,
          config: withoutMaskedSecrets(n.data.config, types[n.data.nodeType]?.config_schema),
          problems: [],
          stats: undefined,
        },
      };
    });
    const freshEdges = copied.edges.map((e) =>
      canvasEdge({
        id: `${renamed.get(e.source)}-${e.sourceHandle || "next"}-${renamed.get(e.target)}`,
        source: renamed.get(e.source),
        sourceHandle: e.sourceHandle,
        target: renamed.get(e.target),
      }),
    );
    setNodes((list) => [...list.map((n) => ({ ...n, selected: false })), ...fresh]);
    setEdges((list) => [...list, ...freshEdges]);
    clipboard.current = { nodes: fresh, edges: freshEdges };
    touched();
  }, [readOnly, record, setNodes, setEdges, touched, types]);

  useEffect(() => {
    const onKey = (event) => {
      if (typing(event.target)) return;
      const mod = event.ctrlKey || event.metaKey;
      if (!mod) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey && !readOnly) {
        event.preventDefault();
        undo();
      } else if (((key === "z" && event.shiftKey) || key === "y") && !readOnly) {
        event.preventDefault();
        redo();
      } else if (key === "c") {
        copy();
      } else if (key === "v" && !readOnly) {
        event.preventDefault();
        paste();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [undo, redo, copy, paste, readOnly]);

  // --- saving ------------------------------------------------------------------------
  const save = useCallback(async () => {
    if (readOnly || conflict.current) return false;
    if (saving.current) await saving.current;
    const upTo = changes;
    const graph = toGraph(nodesRef.current, edgesRef.current);
    setSaveState("saving");
    const request = call(initial.urls.draft, {
      method: "PUT",
      body: { graph, revision: revision.current },
      csrf: initial.csrfToken,
    });
    saving.current = request;
    const result = await request;
    saving.current = null;
    if (result.status === 409) {
      conflict.current = true;
      setSaveState("conflict");
      setNotice({
        kind: "danger",
        text: gettext(
          "This flow was saved in another tab or by someone else since you opened it. Your changes here are not saved: reload the page to see the latest draft.",
        ),
      });
      return false;
    }
    if (!result.ok) {
      setSaveState("error");
      setNotice({ kind: "danger", text: result.data?.error?.message || gettext("The draft could not be saved.") });
      return false;
    }
    revision.current = result.data.revision;
    savedChanges.current = upTo;
    setSaveState((s) => (s === "saving" ? "saved" : s));
    return true;
  }, [readOnly, changes, initial]);

  useEffect(() => {
    if (readOnly || changes === savedChanges.current || conflict.current) return undefined;
    const timer = setTimeout(save, AUTOSAVE_MS);
    return () => clearTimeout(timer);
  }, [changes, save, readOnly]);

  useEffect(() => {
    if (changes !== savedChanges.current && saveState === "saved") setSaveState("unsaved");
  }, [changes, saveState]);

  useEffect(() => {
    const warn = (event) => {
      if (changes !== savedChanges.current && !conflict.current) {
        event.preventDefault();
        event.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [changes]);

  // --- validate / publish / status ------------------------------------------------
  const showProblems = useCallback(
    (error) => {
      const byNode = error?.nodes || {};
      setNodes((list) => list.map((n) => ({ ...n, data: { ...n.data, problems: problemLines(byNode[n.id]) } })));
      setGraphProblems(error?.graph || []);
      return Object.keys(byNode).length + (error?.graph || []).length;
    },
    [setNodes],
  );
  const validate = useCallback(async () => {
    if (!(await save())) return;
    const result = await call(initial.urls.validate, { method: "POST", csrf: initial.csrfToken });
    if (result.ok) {
      showProblems(null);
      setNotice({ kind: "success", text: gettext("No problems found: this flow can be published.") });
    } else {
      showProblems(result.data?.error);
      setNotice({ kind: "danger", text: gettext("The flow has problems; they are marked on the canvas.") });
    }
  }, [save, initial, showProblems]);
  const publish = useCallback(async () => {
    if (!(await save())) return;
    const result = await call(initial.urls.publish, { method: "POST", csrf: initial.csrfToken });
    if (result.ok) {
      showProblems(null);
      setVersionNumber(result.data.number);
      setFlowStatus("active");
      setNotice({
        kind: "success",
        text: interpolate(gettext("Published version %(number)s."), { number: result.data.number }, true),
      });
    } else {
      showProblems(result.data?.error);
      setNotice({ kind: "danger", text: gettext("Not published: the flow has problems, marked on the canvas.") });
    }
  }, [save, initial, showProblems]);
  const setStatus = useCallback(
    async (action) => {
      const result = await call(initial.urls[action], { method: "POST", csrf: initial.csrfToken });
      if (result.ok) setFlowStatus(result.data.status);
      else {
        const failed =
          action === "pause" ? gettext("The flow could not be paused.") : gettext("The flow could not be resumed.");
        setNotice({ kind: "danger", text: result.data?.error?.message || failed });
      }
    },
    [initial],
  );
  const autoLayout = useCallback(() => {
    record();
    setNodes((list) => layered(list, edgesRef.current));
    touched();
    window.requestAnimationFrame(() => fitView({ padding: 0.2 }));
  }, [record, setNodes, touched, fitView]);

  // --- test on a lead (dry run) ------------------------------------------------------
  const runTest = useCallback(
    async (body) => {
      setTesting(true);
      try {
        const request = { ...body };
        // A published version is tested as shown; the draft is saved first.
        if (readOnly) request.graph = toGraph(nodesRef.current, edgesRef.current);
        else if (!(await save())) {
          setOnPath(null);
          setTestOutcome({ error: [gettext("The draft could not be saved, so it was not tested.")] });
          return;
        }
        const ranAt = changesRef.current;
        const result = await call(initial.urls.dryRun, { method: "POST", body: request, csrf: initial.csrfToken });
        if (result.ok) {
          showProblems(null);
          setTestOutcome({ data: result.data });
          setOnPath({ nodes: new Set(result.data.path), edges: new Set(result.data.edges), changes: ranAt });
        } else if (result.data?.error?.code === "invalid_graph") {
          showProblems(result.data.error);
          setOnPath(null);
          setNotice({ kind: "danger", text: gettext("The flow has problems; they are marked on the canvas.") });
          setTestOutcome({
            error: [gettext("Not tested: fix the problems marked on the canvas first.")],
          });
        } else {
          setOnPath(null);
          setTestOutcome({ error: errorLines(result.data, gettext("The test could not run.")) });
        }
      } finally {
        setTesting(false);
      }
    },
    [readOnly, save, initial, showProblems],
  );
  const clearTest = useCallback(() => {
    setOnPath(null);
    setTestOutcome(null);
  }, []);
  const triggers = useMemo(
    () =>
      nodes
        .filter((n) => types[n.data.nodeType]?.kind === "trigger")
        .map((n) => ({ type: n.data.nodeType, config: n.data.config || {} })),
    [nodes, types],
  );
  // What React Flow draws: the nodes and edges, with the tested path marked.
  // The marks never reach the saved graph, undo or the clipboard.
  const shownNodes = useMemo(() => {
    if (!onPath) return nodes;
    return nodes.map((n) =>
      onPath.nodes.has(n.id)
        ? {
            ...n,
            data: { ...n.data, highlight: true },
            ariaLabel: interpolate(gettext("%(node)s, on the tested path"), { node: n.ariaLabel }, true),
          }
        : n,
    );
  }, [nodes, onPath]);
  const shownEdges = useMemo(() => {
    if (!onPath) return edges;
    return edges.map((e) =>
      onPath.edges.has(e.id) ? { ...e, animated: true, className: "lf-edge-on-path", style: PATH_EDGE_STYLE } : e,
    );
  }, [edges, onPath]);

  const showLeads = useCallback((node, status) => setSide({ node, status }), []);

  // --- the side panel (server-rendered forms through htmx) ----------------------
  const selected = nodes.filter((n) => n.selected);
  const single = selected.length === 1 ? selected[0] : null;
  const singleId = single ? single.id : null;
  // Selecting a node (by click or Enter) shows its settings. The side panel is
  // switched while rendering, as soon as the selection changes, rather than in an
  // effect that would render the other panel once first.
  const [selectedBefore, setSelectedBefore] = useState(singleId);
  if (singleId !== selectedBefore) {
    setSelectedBefore(singleId);
    if (singleId) setSide(null);
  }
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
  }, [singleId, initial, readOnly]);

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
  }, [readOnly, record, setNodes, touched, types]);

  // --- live counts on a published flow -----------------------------------------
  useEffect(() => {
    if (!initial.urls.stats || versionNumber == null) return undefined;
    let stopped = false;
    const refresh = async () => {
      const result = await call(initial.urls.stats);
      if (stopped || !result.ok) return;
      const byNode = result.data.nodes || {};
      setNodes((list) =>
        list.map((n) => {
          const stats = byNode[n.id];
          const same = JSON.stringify(stats) === JSON.stringify(n.data.stats);
          return same ? n : { ...n, data: { ...n.data, stats } };
        }),
      );
    };
    refresh();
    const timer = setInterval(refresh, STATS_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [initial, versionNumber, setNodes]);

  const flowLabels = useMemo(() => reactFlowLabels(), []);
  const empty = nodes.length === 0;
  const testOpen = side === "test";
  const testButton = (
    <button
      type="button"
      className={`btn btn-sm ${testOpen ? "btn-secondary" : "btn-outline-secondary"}`}
      onClick={() => setSide(testOpen ? null : "test")}
      aria-expanded={testOpen}
      aria-controls="lf-test-panel"
      title={gettext("See the path a lead would take, without changing anything")}
    >
      {gettext("Test on a lead")}
    </button>
  );
  const leadsNode = side && side.node ? nodes.find((n) => n.id === side.node) : null;
  return (
    <TypesContext.Provider value={types}>
      <div className="lf-builder">
        <div className="lf-toolbar" role="toolbar" aria-label={gettext("Flow actions")}>
          <span className={`badge lf-status lf-status-${flowStatus}`}>{statusLabel(flowStatus)}</span>
          <span className="text-muted small">
            {versionNumber
              ? interpolate(gettext("version %(number)s"), { number: formatNumber(versionNumber) }, true)
              : gettext("never published")}
          </span>
          {!readOnly && (
            <>
              <button
                type="button"
                className="btn btn-sm btn-outline-secondary"
                onClick={undo}
                title={gettext("Undo (Ctrl+Z)")}
                aria-label={gettext("Undo")}
                aria-keyshortcuts="Control+Z Meta+Z"
              >
                {gettext("Undo")}
              </button>
              <button
                type="button"
                className="btn btn-sm btn-outline-secondary"
                onClick={redo}
                title={gettext("Redo (Ctrl+Shift+Z)")}
                aria-label={gettext("Redo")}
                aria-keyshortcuts="Control+Shift+Z Control+Y Meta+Shift+Z"
              >
                {gettext("Redo")}
              </button>
              <button
                type="button"
                className="btn btn-sm btn-outline-secondary"
                onClick={autoLayout}
                aria-label={gettext("Tidy up the layout")}
              >
                {gettext("Tidy up")}
              </button>
              <span className={`lf-save lf-save-${saveState}`} role="status" aria-live="polite">
                {saveLabel(saveState)}
              </span>
              <span className="ms-auto" />
              {testButton}
              <button
                type="button"
                className="btn btn-sm btn-outline-primary"
                onClick={save}
                disabled={saveState === "conflict"}
                aria-label={gettext("Save the draft")}
              >
                {gettext("Save")}
              </button>
              <button
                type="button"
                className="btn btn-sm btn-outline-primary"
                onClick={validate}
                aria-label={gettext("Validate the draft")}
              >
                {gettext("Validate")}
              </button>
              <button
                type="button"
                className="btn btn-sm btn-primary"
                onClick={publish}
                aria-label={gettext("Publish the draft")}
              >
                {gettext("Publish")}
              </button>
              {flowStatus === "active" && (
                <button
                  type="button"
                  className="btn btn-sm btn-outline-warning"
                  onClick={() => setStatus("pause")}
                  aria-label={gettext("Pause the flow")}
                >
                  {gettext("Pause")}
                </button>
              )}
              {flowStatus === "paused" && (
                <button
                  type="button"
                  className="btn btn-sm btn-outline-success"
                  onClick={() => setStatus("resume")}
                  aria-label={gettext("Resume the flow")}
                >
                  {gettext("Resume")}
                </button>
              )}
            </>
          )}
          {readOnly && (
            <>
              <span className="ms-auto" />
              {testButton}
            </>
          )}
        </div>
        {notice && (
          <div className={`alert alert-${notice.kind} py-2 mb-2 d-flex`} role="alert">
            <span>{notice.text}</span>
            <button
              type="button"
              className="btn-close ms-auto"
              aria-label={gettext("Dismiss")}
              onClick={() => setNotice(null)}
            />
          </div>
        )}
        {graphProblems.length > 0 && (
          <ul className="alert alert-warning py-2 mb-2 lf-graph-problems">
            {graphProblems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        )}
        <div className={readOnly ? "lf-body lf-body-readonly" : "lf-body"}>
          {!readOnly && <Palette nodeTypes={initial.nodeTypes} onAdd={(key) => addNode(key)} disabled={readOnly} />}
          <div className="lf-canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop}>
            {empty && !readOnly && (
              <p className="lf-empty">{gettext("Drag a trigger from the palette, or click it, to start this flow.")}</p>
            )}
            <NodeLeadsContext.Provider value={showLeads}>
              <ReactFlow
                nodes={shownNodes}
                edges={shownEdges}
                nodeTypes={nodeTypesForFlow}
                onNodesChange={onNodesChange}
                onEdgesChange={onEdgesChange}
                onConnect={onConnect}
                onNodeDragStart={record}
                onNodeClick={() => setSide(null)}
                isValidConnection={isValidConnection}
                nodesDraggable={!readOnly}
                nodesConnectable={!readOnly}
                deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]}
                multiSelectionKeyCode={["Shift", "Meta", "Control"]}
                fitView={start.nodes.length > 0}
                fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
                minZoom={0.1}
                ariaLabelConfig={flowLabels}
                proOptions={{ hideAttribution: true }}
              >
                <Background gap={16} />
                <Controls showInteractive={!readOnly} />
                <MiniMap pannable zoomable ariaLabel={flowLabels["minimap.ariaLabel"]} style={MINIMAP_SIZE} />
              </ReactFlow>
            </NodeLeadsContext.Provider>
          </div>
          <aside className="lf-panel nokey" aria-label={gettext("Node settings")} hidden={side !== null}>
            {!single && (
              <p className="text-muted small p-2 mb-0">
                {selected.length > 1
                  ? interpolate(
                      ngettext("%(count)s node selected.", "%(count)s nodes selected.", selected.length),
                      { count: formatNumber(selected.length) },
                      true,
                    )
                  : gettext("Select a node to configure it.")}
              </p>
            )}
            <div ref={panel} className="lf-panel-form" />
          </aside>
          <DryRunPanel
            urls={initial.urls}
            types={types}
            triggers={triggers}
            readOnly={readOnly}
            hidden={!testOpen}
            running={testing}
            outcome={testOutcome}
            stale={Boolean(onPath) && changes !== onPath.changes}
            onRun={runTest}
            onClear={clearTest}
            onClose={() => setSide(null)}
          />
          {side && side.node && (
            <NodeLeads
              key={`${side.node}-${side.status}`}
              urls={initial.urls}
              nodeId={side.node}
              status={side.status}
              nodeLabel={
                leadsNode ? leadsNode.data.summary || types[leadsNode.data.nodeType]?.label || side.node : side.node
              }
              onClose={() => setSide(null)}
            />
          )}
        </div>
      </div>
    </TypesContext.Provider>
  );
}
