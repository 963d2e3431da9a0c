import { useCallback, useMemo, useState } from "react";
import { gettext, interpolate } from "../../i18n.js";
import { call, errorLines } from "../api.js";
import { toGraph } from "../graph.js";
import useLatest from "./useLatest.js";

const PATH_EDGE_STYLE = { stroke: "#16a34a", strokeWidth: 3 };

// Testing the flow on a lead (a dry run on the server): the outcome for the
// test panel, and the path the lead took, marked on the nodes and edges React
// Flow draws. The marks never reach the saved graph, undo or the clipboard; the
// path is stale once the graph changed after the test ran.
export default function useDryRun({
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
}) {
  const [testing, setTesting] = useState(false);
  const [testOutcome, setTestOutcome] = useState(null);
  const [onPath, setOnPath] = useState(null);
  const changesRef = useLatest(changes);

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
    [readOnly, save, initial, showProblems, setNotice, nodesRef, edgesRef, changesRef],
  );
  const clearTest = useCallback(() => {
    setOnPath(null);
    setTestOutcome(null);
  }, []);
  // The triggers the test panel offers to test against.
  const triggers = useMemo(
    () =>
      nodes
        .filter((n) => types[n.data.nodeType]?.kind === "trigger")
        .map((n) => ({ type: n.data.nodeType, config: n.data.config || {} })),
    [nodes, types],
  );
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

  return {
    testing,
    testOutcome,
    stale: Boolean(onPath) && changes !== onPath.changes,
    triggers,
    shownNodes,
    shownEdges,
    runTest,
    clearTest,
  };
}
