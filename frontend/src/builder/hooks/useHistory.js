import { useCallback, useRef } from "react";

// How many steps undo goes back.
const LIMIT = 100;

// A copy of the graph to go back to; selection is not part of the history.
function snapshot(nodes, edges) {
  return {
    nodes: nodes.map((n) => ({ ...n, selected: false })),
    edges: edges.map((e) => ({ ...e, selected: false })),
  };
}

// Undo and redo. Every change to the graph calls `record` just before it is
// made; undoing puts the current graph on the redo stack, and a new change
// clears that stack.
export default function useHistory({ nodesRef, edgesRef, setNodes, setEdges, touched }) {
  const past = useRef([]);
  const future = useRef([]);

  const record = useCallback(() => {
    past.current.push(snapshot(nodesRef.current, edgesRef.current));
    if (past.current.length > LIMIT) past.current.shift();
    future.current = [];
  }, [nodesRef, edgesRef]);
  const undo = useCallback(() => {
    const previous = past.current.pop();
    if (!previous) return;
    future.current.push(snapshot(nodesRef.current, edgesRef.current));
    setNodes(previous.nodes);
    setEdges(previous.edges);
    touched();
  }, [nodesRef, edgesRef, setNodes, setEdges, touched]);
  const redo = useCallback(() => {
    const next = future.current.pop();
    if (!next) return;
    past.current.push(snapshot(nodesRef.current, edgesRef.current));
    setNodes(next.nodes);
    setEdges(next.edges);
    touched();
  }, [nodesRef, edgesRef, setNodes, setEdges, touched]);

  return { record, undo, redo };
}
