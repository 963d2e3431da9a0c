// The flow builder: React Flow's canvas with the palette on the left, the
// selected node's settings (or the test, or a node's leads) on the right, and a
// toolbar above. The hooks in ./hooks/ hold the behaviour; this component
// wires them together and draws the page.
import { Background, Controls, MiniMap, ReactFlow, useEdgesState, useNodesState } from "@xyflow/react";
import { useCallback, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { formatNumber, gettext, interpolate, ngettext } from "../i18n.js";
import DryRunPanel from "./DryRunPanel.jsx";
import FlowEdge from "./FlowEdge.jsx";
import FlowNode from "./FlowNode.jsx";
import InsertMenu from "./InsertMenu.jsx";
import NodeLeads from "./NodeLeads.jsx";
import Palette from "./Palette.jsx";
import { InsertContext, NodeLeadsContext, TypesContext } from "./context.js";
import { toCanvas } from "./graph.js";
import useAutosave from "./hooks/useAutosave.js";
import useClipboard from "./hooks/useClipboard.js";
import useDryRun from "./hooks/useDryRun.js";
import useEditing from "./hooks/useEditing.js";
import useHistory from "./hooks/useHistory.js";
import useLatest from "./hooks/useLatest.js";
import useLiveStats from "./hooks/useLiveStats.js";
import useNodePanel from "./hooks/useNodePanel.js";
import usePublishing from "./hooks/usePublishing.js";
import useShortcuts from "./hooks/useShortcuts.js";
import { reactFlowLabels, saveLabel } from "./labels.js";

const nodeTypesForFlow = { leadflow: FlowNode };
const edgeTypesForFlow = { leadflow: FlowEdge };

// Below this width the canvas opens read-only: the palette, the canvas and the
// settings do not fit side by side on a phone.
const NARROW = "(max-width: 767.98px)";
function subscribeNarrow(callback) {
  const query = window.matchMedia(NARROW);
  query.addEventListener("change", callback);
  return () => query.removeEventListener("change", callback);
}
const isNarrow = () => window.matchMedia(NARROW).matches;
// Smaller than React Flow's default, so it hides less of the canvas at 1280×800.
const MINIMAP_SIZE = { width: 150, height: 100 };

export default function Builder({ initial }) {
  const types = useMemo(() => Object.fromEntries(initial.nodeTypes.map((t) => [t.key, t])), [initial]);
  const start = useMemo(() => toCanvas(initial.graph, types, initial.summaries), [initial, types]);
  const [nodes, setNodes, onNodesChangeBase] = useNodesState(start.nodes);
  const [edges, setEdges, onEdgesChangeBase] = useEdgesState(start.edges);
  const [notice, setNotice] = useState(null);
  // The right-hand column: the node settings (null), the test ("test"), or the
  // leads behind a node's count ({ node, status }).
  const [side, setSide] = useState(null);
  const narrow = useSyncExternalStore(subscribeNarrow, isNarrow, () => false);
  const readOnly = Boolean(initial.readOnly) || narrow;
  // Where a "+" was clicked: { place: { source, handle } | { edge }, anchor }.
  const [inserting, setInserting] = useState(null);
  const wrapper = useRef(null);
  const nodesRef = useLatest(nodes);
  const edgesRef = useLatest(edges);

  const { saveState, changes, touched, save } = useAutosave({ initial, readOnly, nodesRef, edgesRef, setNotice });
  const { record, undo, redo } = useHistory({ nodesRef, edgesRef, setNodes, setEdges, touched });
  const {
    onNodesChange,
    onEdgesChange,
    isValidConnection,
    onConnect,
    addNode,
    insertStep,
    onDragOver,
    onDrop,
    autoLayout,
  } = useEditing({
    types,
    readOnly,
    wrapper,
    nodesRef,
    edgesRef,
    setNodes,
    setEdges,
    onNodesChangeBase,
    onEdgesChangeBase,
    record,
    touched,
    setNotice,
  });
  const { copy, paste } = useClipboard({ nodesRef, edgesRef, types, readOnly, record, setNodes, setEdges, touched });
  useShortcuts({ readOnly, undo, redo, copy, paste });
  const { flowStatus, versionNumber, graphProblems, showProblems, validate, publish, setStatus } = usePublishing({
    initial,
    save,
    setNodes,
    setNotice,
  });
  const { testing, testOutcome, stale, triggers, shownNodes, shownEdges, runTest, clearTest } = useDryRun({
    initial,
    readOnly,
    types,
    nodes,
    edges,
    nodesRef,
    edgesRef,
    changes,
    save,
    showProblems,
    setNotice,
  });

  const showLeads = useCallback((node, status) => setSide({ node, status }), []);

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
  const panel = useNodePanel({ initial, readOnly, types, singleId, nodesRef, record, setNodes, touched });
  useLiveStats({ initial, versionNumber, setNodes });

  const connected = useMemo(() => new Set(edges.map((e) => `${e.source}:${e.sourceHandle || "next"}`)), [edges]);
  const closeInsert = useCallback(() => setInserting(null), []);
  const insert = useMemo(
    () => ({
      editable: !readOnly,
      connected,
      open: (place, anchor) =>
        setInserting({
          place,
          anchor: anchor.getBoundingClientRect(),
          box: wrapper.current.getBoundingClientRect(),
        }),
    }),
    [readOnly, connected],
  );
  const pickInsert = useCallback(
    (key) => {
      if (inserting) insertStep(key, inserting.place);
      setInserting(null);
    },
    [inserting, insertStep],
  );

  const summaries = useMemo(() => Object.fromEntries(nodes.map((n) => [n.id, n.data.summary])), [nodes]);
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
      <InsertContext.Provider value={insert}>
        <div className={narrow ? "lf-builder lf-builder-narrow" : "lf-builder"}>
          {narrow && !initial.readOnly && (
            <p className="alert alert-info py-2 mb-2 small" role="note">
              {gettext("Editing a flow needs a larger screen. Here you can look at it and test it on a lead.")}
            </p>
          )}
          <div className="lf-toolbar" role="toolbar" aria-label={gettext("Flow actions")}>
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
                <p className="lf-empty">
                  {gettext("Drag a trigger from the palette, or click it, to start this flow.")}
                </p>
              )}
              <NodeLeadsContext.Provider value={showLeads}>
                <ReactFlow
                  nodes={shownNodes}
                  edges={shownEdges}
                  nodeTypes={nodeTypesForFlow}
                  edgeTypes={edgeTypesForFlow}
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
                  {!narrow && (
                    <MiniMap pannable zoomable ariaLabel={flowLabels["minimap.ariaLabel"]} style={MINIMAP_SIZE} />
                  )}
                </ReactFlow>
              </NodeLeadsContext.Provider>
              {inserting && (
                <InsertMenu
                  nodeTypes={initial.nodeTypes}
                  place={inserting.place}
                  anchor={inserting.anchor}
                  box={inserting.box}
                  onPick={pickInsert}
                  onClose={closeInsert}
                />
              )}
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
                    : readOnly
                      ? gettext("Select a step to see its settings.")
                      : gettext("Select a node to configure it.")}
                </p>
              )}
              <div ref={panel} className="lf-panel-form" />
            </aside>
            <DryRunPanel
              urls={initial.urls}
              summaries={summaries}
              types={types}
              triggers={triggers}
              readOnly={readOnly}
              hidden={!testOpen}
              running={testing}
              outcome={testOutcome}
              stale={stale}
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
      </InsertContext.Provider>
    </TypesContext.Provider>
  );
}
