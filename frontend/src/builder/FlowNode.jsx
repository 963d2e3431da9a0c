import { Handle, Position } from "@xyflow/react";
import { memo, useContext } from "react";
import { NodeLeadsContext, TypesContext } from "./context.js";

const HANDLE_LABELS = { yes: "Yes", no: "No", met: "Met", timeout: "Timed out" };
// The counts on a published flow's node: key, as shown, as said to a screen reader.
const COUNTS = [
  ["entered", "in", "entered"],
  ["completed", "done", "completed"],
  ["waiting", "waiting", "waiting"],
  ["failed", "failed", "failed"],
];

function FlowNode({ id, data, selected }) {
  const types = useContext(TypesContext);
  const showLeads = useContext(NodeLeadsContext);
  const type = types[data.nodeType];
  const kind = type ? type.kind : "unknown";
  const outputs = type ? type.outputs : [];
  const problems = data.problems || [];
  const classes = ["lf-node", `lf-node-${kind}`];
  if (selected) classes.push("lf-selected");
  if (problems.length) classes.push("lf-invalid");
  if (data.highlight) classes.push("lf-on-path");
  return (
    <div className={classes.join(" ")} data-node-id={id} data-node-type={data.nodeType}>
      {kind !== "trigger" && <Handle type="target" position={Position.Top} id="in" />}
      <div className="lf-node-kind">
        {kind} · <span className="lf-node-label">{type ? type.label : data.nodeType}</span>
      </div>
      <div className={data.summary ? "lf-node-summary" : "lf-node-summary lf-unset"}>
        {data.summary || "Not configured yet"}
      </div>
      {data.stats && (
        <div className="lf-node-stats" role="group" aria-label="Leads at this step">
          {COUNTS.map(([key, shown, said]) => (
            <button
              key={key}
              type="button"
              // Not a drag handle, and its keys are its own (Enter, Delete), not the node's.
              className={`lf-stat lf-stat-${key} nodrag nokey`}
              title="List these leads"
              aria-label={`${data.stats[key]} ${said}: list the leads`}
              onClick={(event) => {
                event.stopPropagation();
                if (showLeads) showLeads(id, key);
              }}
            >
              {data.stats[key]} {shown}
            </button>
          ))}
        </div>
      )}
      {problems.length > 0 && (
        <ul className="lf-node-problems" role="alert">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <div className="lf-handles">
        {outputs.map((handle, index) => (
          <Handle
            key={handle}
            type="source"
            position={Position.Bottom}
            id={handle}
            style={{ left: `${((index + 1) * 100) / (outputs.length + 1)}%` }}
            aria-label={HANDLE_LABELS[handle] || "Next"}
          >
            {handle !== "next" && <span className="lf-handle-label">{HANDLE_LABELS[handle] || handle}</span>}
          </Handle>
        ))}
      </div>
    </div>
  );
}

export default memo(FlowNode);
