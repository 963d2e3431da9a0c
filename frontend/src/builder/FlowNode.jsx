import { Handle, Position } from "@xyflow/react";
import { memo, useContext } from "react";
import { formatNumber, gettext, interpolate } from "../i18n.js";
import { InsertContext, NodeLeadsContext, TypesContext } from "./context.js";
import { handleLabel, kindLabel } from "./graph.js";

const COUNT_KEYS = ["entered", "completed", "waiting", "failed"];

// A count on a published flow's node: as shown, and as said to a screen reader.
function countText(key, count) {
  const number = formatNumber(count);
  switch (key) {
    case "entered":
      return [
        interpolate(gettext("%(count)s in"), { count: number }, true),
        interpolate(gettext("%(count)s entered: list the leads"), { count: number }, true),
      ];
    case "completed":
      return [
        interpolate(gettext("%(count)s done"), { count: number }, true),
        interpolate(gettext("%(count)s completed: list the leads"), { count: number }, true),
      ];
    case "waiting":
      return [
        interpolate(gettext("%(count)s waiting"), { count: number }, true),
        interpolate(gettext("%(count)s waiting: list the leads"), { count: number }, true),
      ];
    default:
      return [
        interpolate(gettext("%(count)s failed"), { count: number }, true),
        interpolate(gettext("%(count)s failed: list the leads"), { count: number }, true),
      ];
  }
}

// A summary with its placeholders ({lead}) shown as such, not as raw braces.
export function SummaryText({ text }) {
  const parts = text.split(/(\{lead\})/);
  return parts.map((part, index) =>
    part === "{lead}" ? (
      <span key={index} className="lf-placeholder" title={gettext("Replaced by the lead's name")}>
        {gettext("lead's name")}
      </span>
    ) : (
      part
    ),
  );
}

// What the node says under its kind: the summary of its settings, else what is
// still missing (not an error: nothing failed), else that it waits for settings.
function NodeSummary({ data }) {
  if (data.summary) {
    return (
      <div className="lf-node-summary">
        <SummaryText text={data.summary} />
      </div>
    );
  }
  if (data.pending && data.pending.length) {
    return (
      <div className="lf-node-summary lf-unset">
        {interpolate(gettext("To finish — %(problem)s"), { problem: data.pending[0] }, true)}
      </div>
    );
  }
  return <div className="lf-node-summary lf-unset">{gettext("Not configured yet")}</div>;
}

function FlowNode({ id, data, selected }) {
  const types = useContext(TypesContext);
  const showLeads = useContext(NodeLeadsContext);
  const insert = useContext(InsertContext);
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
        {kindLabel(kind)} · <span className="lf-node-label">{type ? type.label : data.nodeType}</span>
      </div>
      <NodeSummary data={data} />
      {data.stats && (
        <div className="lf-node-stats" role="group" aria-label={gettext("Leads at this step")}>
          {COUNT_KEYS.map((key) => {
            const [shown, said] = countText(key, data.stats[key]);
            return (
              <button
                key={key}
                type="button"
                // Not a drag handle, and its keys are its own (Enter, Delete), not the node's.
                className={`lf-stat lf-stat-${key}${data.stats[key] ? "" : " lf-stat-zero"} nodrag nokey`}
                title={gettext("List these leads")}
                aria-label={said}
                onClick={(event) => {
                  event.stopPropagation();
                  if (showLeads) showLeads(id, key);
                }}
              >
                {shown}
              </button>
            );
          })}
        </div>
      )}
      {data.stats && data.stats.email && (
        // Worded by the server, in the marketer's language.
        <div className="lf-node-email-stats">{data.stats.email.text}</div>
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
            aria-label={handleLabel(handle)}
          >
            {handle !== "next" && <span className="lf-handle-label">{handleLabel(handle)}</span>}
          </Handle>
        ))}
        {insert &&
          insert.editable &&
          outputs.map((handle, index) =>
            insert.connected.has(`${id}:${handle}`) ? null : (
              <button
                key={handle}
                type="button"
                className="lf-add-after nodrag nopan nokey"
                style={{ left: `${((index + 1) * 100) / (outputs.length + 1)}%` }}
                aria-label={
                  handle === "next"
                    ? gettext("Add a step after this one")
                    : interpolate(gettext("Add a step after “%(output)s”"), { output: handleLabel(handle) }, true)
                }
                title={gettext("Add a step here")}
                onClick={(event) => {
                  event.stopPropagation();
                  insert.open({ source: id, handle }, event.currentTarget);
                }}
              >
                +
              </button>
            ),
          )}
      </div>
    </div>
  );
}

export default memo(FlowNode);
