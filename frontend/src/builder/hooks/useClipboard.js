import { useCallback, useRef } from "react";
import { canvasEdge, newNodeId, withoutMaskedSecrets } from "../graph.js";

// Copy and paste of the selected nodes, with the edges between them. The
// clipboard is the builder's own (not the system's), so it lives as long as the page.
export default function useClipboard({ nodesRef, edgesRef, types, readOnly, record, setNodes, setEdges, touched }) {
  const clipboard = useRef(null);

  const copy = useCallback(() => {
    const chosen = nodesRef.current.filter((n) => n.selected);
    if (!chosen.length) return;
    const ids = new Set(chosen.map((n) => n.id));
    clipboard.current = {
      nodes: chosen,
      edges: edgesRef.current.filter((e) => ids.has(e.source) && ids.has(e.target)),
    };
  }, [nodesRef, edgesRef]);

  // The copies get new ids, sit a little below and to the right, and become the
  // selection; secrets the server masked are left out of their settings. Pasting
  // again pastes copies of the copies, one step further.
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
  }, [nodesRef, readOnly, record, setNodes, setEdges, touched, types]);

  return { copy, paste };
}
