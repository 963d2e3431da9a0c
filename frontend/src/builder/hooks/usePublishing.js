import { useCallback, useState } from "react";
import { gettext, interpolate } from "../../i18n.js";
import { call, flowChanged } from "../api.js";

// The server's problems for one node, keyed by the path of the field
// ("config.delay"), as lines: each is a sentence that names its setting.
function problemLines(byPath) {
  return Object.values(byPath || {}).flat();
}

// Validating and publishing the draft (each saves it first), pausing and
// resuming the flow, and the problems the server found, marked on their nodes
// or listed above the canvas when they concern the whole graph.
export default function usePublishing({ initial, save, setNodes, setNotice }) {
  const [graphProblems, setGraphProblems] = useState([]);
  const [flowStatus, setFlowStatus] = useState(initial.flow.status);
  const [versionNumber, setVersionNumber] = useState(initial.flow.version);

  // Marks the problems of an invalid_graph error (null clears them all) and
  // returns how many nodes and graph-wide problems there are.
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
  }, [save, initial, showProblems, setNotice]);
  const publish = useCallback(async () => {
    if (!(await save())) return;
    const result = await call(initial.urls.publish, { method: "POST", csrf: initial.csrfToken });
    if (result.ok) {
      showProblems(null);
      setVersionNumber(result.data.number);
      setFlowStatus("active");
      flowChanged();
      setNotice({
        kind: "success",
        text: interpolate(gettext("Published version %(number)s."), { number: result.data.number }, true),
      });
    } else {
      showProblems(result.data?.error);
      setNotice({ kind: "danger", text: gettext("Not published: the flow has problems, marked on the canvas.") });
    }
  }, [save, initial, showProblems, setNotice]);
  // `action` is "pause" or "resume".
  const setStatus = useCallback(
    async (action) => {
      const result = await call(initial.urls[action], { method: "POST", csrf: initial.csrfToken });
      if (result.ok) {
        setFlowStatus(result.data.status);
        flowChanged();
      } else {
        const failed =
          action === "pause" ? gettext("The flow could not be paused.") : gettext("The flow could not be resumed.");
        setNotice({ kind: "danger", text: result.data?.error?.message || failed });
      }
    },
    [initial, setNotice],
  );

  return { flowStatus, versionNumber, graphProblems, showProblems, validate, publish, setStatus };
}
