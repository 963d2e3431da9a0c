import { BaseEdge, EdgeLabelRenderer, getSmoothStepPath } from "@xyflow/react";
import { memo, useContext } from "react";
import { gettext } from "../i18n.js";
import { InsertContext } from "./context.js";

// A connection: a stepped line with an arrow, and a "+" in its middle that
// adds a step between its two ends.
function FlowEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, markerEnd, style }) {
  const insert = useContext(InsertContext);
  const [path, labelX, labelY] = getSmoothStepPath({
    sourceX,
    sourceY,
    targetX,
    targetY,
    sourcePosition,
    targetPosition,
    borderRadius: 8,
  });
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} style={style} />
      {insert && insert.editable && (
        <EdgeLabelRenderer>
          <button
            type="button"
            className="lf-add-between nodrag nopan nokey"
            data-edge-id={id}
            style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
            aria-label={gettext("Add a step on this connection")}
            title={gettext("Add a step here")}
            onClick={(event) => {
              event.stopPropagation();
              insert.open({ edge: id }, event.currentTarget);
            }}
          >
            +
          </button>
        </EdgeLabelRenderer>
      )}
    </>
  );
}

export default memo(FlowEdge);
