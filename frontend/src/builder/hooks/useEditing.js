import { useReactFlow } from "@xyflow/react";
import { useCallback } from "react";
import { DRAG_TYPE } from "../Palette.jsx";
import {
  NODE_HEIGHT,
  NODE_WIDTH,
  canvasEdge,
  connectionProblem,
  downstream,
  freeSpot,
  layered,
  newNodeId,
  nodeAriaLabel,
} from "../graph.js";

// Vertical room between a step and the next one.
const STEP_GAP = 70;

// A new node of `type` at `position`, with its settings' defaults, selected.
function freshNode(type, position, nodes) {
  const config = {};
  for (const [name, spec] of Object.entries(type.config_schema.properties || {})) {
    if (spec.default !== undefined) config[name] = spec.default;
  }
  const summary = type.defaultSummary || "";
  return {
    id: newNodeId(type.key, nodes),
    type: "leadflow",
    position,
    selected: true,
    data: { nodeType: type.key, config, summary, complete: type.defaultSummary != null, problems: [] },
    ariaLabel: nodeAriaLabel(type, summary),
  };
}

// Edits made on the canvas itself: React Flow's changes (moving, deleting,
// selecting), new connections, nodes added from the palette (by click or by
// drag and drop) and tidying up the layout. Each edit that changes the graph is
// recorded for undo and counted for the autosave.
export default function useEditing({
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
}) {
  const { screenToFlowPosition, fitView } = useReactFlow();

  // Selection and dimensions are not edits; a drag is one when it ends.
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
    [types, nodesRef, edgesRef],
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
    [types, nodesRef, edgesRef, record, setEdges, touched, setNotice],
  );

  // A node of the type, with its settings' defaults, selected alone: where it
  // was dropped, or near the middle of the canvas, below anything already there.
  const addNode = useCallback(
    (typeKey, position) => {
      const type = types[typeKey];
      if (!type || readOnly) return;
      let at = position;
      if (!at) {
        const box = wrapper.current.getBoundingClientRect();
        const centre = screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 4 });
        at = freeSpot({ x: centre.x - NODE_WIDTH / 2, y: centre.y }, nodesRef.current);
      }
      record();
      const node = freshNode(type, at, nodesRef.current);
      setNodes((list) => [...list.map((n) => ({ ...n, selected: false })), node]);
      touched();
    },
    [types, readOnly, wrapper, nodesRef, screenToFlowPosition, record, setNodes, touched],
  );

  // A step added after an output ({ source, handle }), connected to it and
  // placed below it; or on a connection ({ edge }), between its two ends, the
  // steps below moved down to make room.
  const insertStep = useCallback(
    (typeKey, place) => {
      const type = types[typeKey];
      if (!type || readOnly || type.kind === "trigger") return;
      const nodes = nodesRef.current;
      const edges = edgesRef.current;
      const firstOutput = type.outputs[0];
      if (place.edge) {
        const edge = edges.find((e) => e.id === place.edge);
        const target = edge && nodes.find((n) => n.id === edge.target);
        if (!edge || !target || !firstOutput) return;
        record();
        const node = freshNode(type, { ...target.position }, nodes);
        const shift = NODE_HEIGHT + STEP_GAP;
        const below = downstream(target.id, edges);
        const handle = edge.sourceHandle || "next";
        setNodes((list) => [
          ...list.map((n) => ({
            ...n,
            selected: false,
            position: below.has(n.id) ? { x: n.position.x, y: n.position.y + shift } : n.position,
          })),
          node,
        ]);
        setEdges((list) => [
          ...list.filter((e) => e.id !== edge.id),
          canvasEdge({
            id: `${edge.source}-${handle}-${node.id}`,
            source: edge.source,
            sourceHandle: handle,
            target: node.id,
          }),
          canvasEdge({
            id: `${node.id}-${firstOutput}-${target.id}`,
            source: node.id,
            sourceHandle: firstOutput,
            target: target.id,
          }),
        ]);
        touched();
        return;
      }
      const source = nodes.find((n) => n.id === place.source);
      if (!source) return;
      const sourceType = types[source.data.nodeType];
      const outputs = sourceType ? sourceType.outputs : ["next"];
      const index = Math.max(0, outputs.indexOf(place.handle));
      const spread = (index - (outputs.length - 1) / 2) * (NODE_WIDTH + 40);
      const height = source.measured?.height || NODE_HEIGHT;
      const at = freeSpot({ x: source.position.x + spread, y: source.position.y + height + STEP_GAP }, nodes);
      record();
      const node = freshNode(type, at, nodes);
      setNodes((list) => [...list.map((n) => ({ ...n, selected: false })), node]);
      setEdges((list) => [
        ...list,
        canvasEdge({
          id: `${source.id}-${place.handle}-${node.id}`,
          source: source.id,
          sourceHandle: place.handle,
          target: node.id,
        }),
      ]);
      touched();
    },
    [types, readOnly, nodesRef, edgesRef, record, setNodes, setEdges, touched],
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
      addNode(key, freeSpot({ x: at.x - NODE_WIDTH / 2, y: at.y - 30 }, nodesRef.current));
    },
    [addNode, screenToFlowPosition, nodesRef],
  );

  const autoLayout = useCallback(() => {
    record();
    setNodes((list) => layered(list, edgesRef.current));
    touched();
    window.requestAnimationFrame(() => fitView({ padding: 0.2 }));
  }, [record, setNodes, edgesRef, touched, fitView]);

  return {
    onNodesChange,
    onEdgesChange,
    isValidConnection,
    onConnect,
    addNode,
    insertStep,
    onDragOver,
    onDrop,
    autoLayout,
  };
}
