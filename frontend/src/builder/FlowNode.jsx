import { Handle, Position } from "@xyflow/react";
import { memo, useContext } from "react";
import { TypesContext } from "./context.js";

const HANDLE_LABELS = { yes: "Yes", no: "No", met: "Met", timeout: "Timed out" };

function FlowNode({ id, data, selected }) {
  const types = useContext(TypesContext);
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
        <div className="lf-node-stats" aria-label="Leads at this step">
          <span title="Entered">{data.stats.entered} in</span>
          <span title="Waiting">{data.stats.waiting} waiting</span>
          <span title="Failed">{data.stats.failed} failed</span>
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
