import { useReactFlow } from "@xyflow/react";
import { useCallback } from "react";
import { DRAG_TYPE } from "../Palette.jsx";
import { canvasEdge, connectionProblem, layered, newNodeId, nodeAriaLabel } from "../graph.js";

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
  // was dropped, or near the middle of the canvas, each one a little further.
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
    [types, readOnly, wrapper, nodesRef, screenToFlowPosition, record, setNodes, touched],
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

  const autoLayout = useCallback(() => {
    record();
    setNodes((list) => layered(list, edgesRef.current));
    touched();
    window.requestAnimationFrame(() => fitView({ padding: 0.2 }));
  }, [record, setNodes, edgesRef, touched, fitView]);

  return { onNodesChange, onEdgesChange, isValidConnection, onConnect, addNode, onDragOver, onDrop, autoLayout };
}
