// The builder's own words for its states, and React Flow's labels in ours.
import { gettext, interpolate } from "../i18n.js";

// The draft's save state, as shown beside the toolbar's buttons.
export function saveLabel(state) {
  switch (state) {
    case "saved":
      return gettext("All changes saved");
    case "unsaved":
      return gettext("Unsaved changes");
    case "saving":
      return gettext("Saving…");
    case "error":
      return gettext("Not saved");
    case "conflict":
      return gettext("Changed elsewhere");
    default:
      return state;
  }
}

// React Flow's own labels (controls, minimap, keyboard help), in our words.
export function reactFlowLabels() {
  return {
    "node.a11yDescription.default": gettext(
      "Press Enter to select this node, arrow keys to move it, Delete to remove it.",
    ),
    "node.a11yDescription.keyboardDisabled": gettext(
      "Press Enter or Space to select a node, then Delete to remove it or Escape to cancel.",
    ),
    "node.a11yDescription.ariaLiveMessage": ({ direction, x, y }) =>
      interpolate(
        gettext("Moved the selected node %(direction)s. New position: x %(x)s, y %(y)s."),
        { direction: directionLabel(direction), x, y },
        true,
      ),
    "edge.a11yDescription.default": gettext(
      "Press Enter or Space to select a connection, then Delete to remove it or Escape to cancel.",
    ),
    "controls.ariaLabel": gettext("Canvas controls"),
    "controls.zoomIn.ariaLabel": gettext("Zoom in"),
    "controls.zoomOut.ariaLabel": gettext("Zoom out"),
    "controls.fitView.ariaLabel": gettext("Fit the flow to the view"),
    "controls.interactive.ariaLabel": gettext("Lock or unlock the canvas"),
    "minimap.ariaLabel": gettext("Overview of the flow"),
    "handle.ariaLabel": gettext("Connection point"),
  };
}

function directionLabel(direction) {
  switch (direction) {
    case "up":
      return gettext("up");
    case "down":
      return gettext("down");
    case "left":
      return gettext("left");
    case "right":
      return gettext("right");
    default:
      return direction;
  }
}
