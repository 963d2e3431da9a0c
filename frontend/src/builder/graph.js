// Conversions between the server's graph JSON and React Flow's nodes and
// edges, the rules a connection must obey, and the layered auto-layout.
import dagre from "@dagrejs/dagre";
import { MarkerType } from "@xyflow/react";
import { gettext } from "../i18n.js";

export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 84;

export function toCanvas(graph, types, summaries) {
  const nodes = (graph.nodes || []).map((node) => ({
    id: node.id,
    type: "leadflow",
    position: node.position || { x: 0, y: 0 },
    data: {
      nodeType: node.type,
      config: node.config || {},
      summary: summaries[node.id] || "",
      problems: [],
    },
    ariaLabel: nodeAriaLabel(types[node.type], summaries[node.id]),
  }));
  const edges = (graph.edges || []).map((edge) => canvasEdge(edge));
  return { nodes, edges };
}

// Every connection ends in an arrow. A condition's output is named once, on
// its node's handle, not again on the line.
export const EDGE_MARKER = { type: MarkerType.ArrowClosed, width: 18, height: 18, color: "#6b7280" };

export function canvasEdge(edge) {
  const handle = edge.sourceHandle || "next";
  return {
    id: edge.id,
    type: "leadflow",
    source: edge.source,
    sourceHandle: handle,
    target: edge.target,
    markerEnd: EDGE_MARKER,
  };
}

// Where a node of the default size fits at `at` or below it, clear of `nodes`.
export function freeSpot(at, nodes, skip = null) {
  const gap = 24;
  const spot = { x: at.x, y: at.y };
  for (let tries = 0; tries < 200; tries += 1) {
    const hit = nodes.find((n) => {
      if (n.id === skip) return false;
      const w = n.measured?.width || NODE_WIDTH;
      const h = n.measured?.height || NODE_HEIGHT;
      return (
        spot.x < n.position.x + w + gap &&
        spot.x + NODE_WIDTH + gap > n.position.x &&
        spot.y < n.position.y + h + gap &&
        spot.y + NODE_HEIGHT + gap > n.position.y
      );
    });
    if (!hit) return spot;
    spot.y = hit.position.y + (hit.measured?.height || NODE_HEIGHT) + gap;
  }
  return spot;
}

// The nodes reachable from `start` along `edges`, `start` included.
export function downstream(start, edges) {
  const seen = new Set();
  const stack = [start];
  while (stack.length) {
    const id = stack.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    for (const e of edges) if (e.source === id) stack.push(e.target);
  }
  return seen;
}

export function toGraph(nodes, edges) {
  return {
    nodes: nodes.map((node) => ({
      id: node.id,
      type: node.data.nodeType,
      config: node.data.config,
      position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
    })),
    edges: edges.map((edge) => ({
      id: edge.id,
      source: edge.source,
      sourceHandle: edge.sourceHandle || "next",
      target: edge.target,
    })),
  };
}

export function nodeAriaLabel(type, summary) {
  const label = type ? type.label : gettext("Unknown node");
  return summary ? `${label}: ${summary}` : label;
}

// Why a connection may not be made, or null when it may.
export function connectionProblem(connection, nodes, edges, types) {
  const { source, target } = connection;
  const handle = connection.sourceHandle || "next";
  if (!source || !target) return gettext("Connect an output to an input.");
  if (source === target) return gettext("A node cannot lead to itself.");
  const targetNode = nodes.find((n) => n.id === target);
  const targetType = targetNode && types[targetNode.data.nodeType];
  if (!targetType) return gettext("Unknown node.");
  if (targetType.kind === "trigger") return gettext("Triggers start a flow; nothing leads into them.");
  if (edges.some((e) => e.source === source && (e.sourceHandle || "next") === handle)) {
    return gettext("This output is already connected.");
  }
  // A path from the target back to the source would close a loop.
  const outgoing = new Map();
  for (const e of edges) {
    if (!outgoing.has(e.source)) outgoing.set(e.source, []);
    outgoing.get(e.source).push(e.target);
  }
  const seen = new Set();
  const stack = [target];
  while (stack.length) {
    const id = stack.pop();
    if (id === source) return gettext("That would make a loop.");
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(outgoing.get(id) || []));
  }
  return null;
}

export function layered(nodes, edges) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 40, ranksep: 70 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) {
    g.setNode(node.id, {
      width: node.measured?.width || NODE_WIDTH,
      height: node.measured?.height || NODE_HEIGHT,
    });
  }
  for (const edge of edges) g.setEdge(edge.source, edge.target);
  dagre.layout(g);
  return nodes.map((node) => {
    const placed = g.node(node.id);
    const width = node.measured?.width || NODE_WIDTH;
    const height = node.measured?.height || NODE_HEIGHT;
    return { ...node, position: { x: placed.x - width / 2, y: placed.y - height / 2 } };
  });
}

let counter = 0;
export function newNodeId(typeKey, nodes) {
  const base = typeKey.replace(/[^a-z0-9]+/gi, "-");
  const taken = new Set(nodes.map((n) => n.id));
  let id;
  do {
    counter += 1;
    id = `${base}-${counter}`;
  } while (taken.has(id));
  return id;
}

// The palette's sections; a function, so that the titles are translated when shown.
export function kindGroups() {
  return [
    { key: "triggers", title: gettext("Triggers"), kinds: ["trigger"] },
    { key: "actions", title: gettext("Actions"), kinds: ["action"] },
    { key: "logic", title: gettext("Logic"), kinds: ["condition", "wait", "exit"] },
  ];
}

// A node's kind as shown on it.
export function kindLabel(kind) {
  switch (kind) {
    case "trigger":
      return gettext("trigger");
    case "action":
      return gettext("action");
    case "condition":
      return gettext("condition");
    case "wait":
      return gettext("wait");
    case "exit":
      return gettext("exit");
    default:
      return gettext("unknown");
  }
}

// The label of a condition's or a wait's output.
export function handleLabel(handle) {
  switch (handle) {
    case "yes":
      return gettext("Yes");
    case "no":
      return gettext("No");
    case "met":
      return gettext("Met");
    case "timeout":
      return gettext("Timed out");
    case "next":
      return gettext("Next");
    default:
      return handle;
  }
}

// The event each trigger type starts on, as the server's `subscribe` and
// `matches` read it: a made-up event in a test run starts filled in with it.
export function triggerEvent(typeKey, config = {}) {
  const url = config.url && config.url.value ? { url: config.url.value } : {};
  switch (typeKey) {
    case "segment.entered":
    case "segment.left":
      return { type: typeKey, name: "", properties: config.segment ? { segment_id: config.segment } : {} };
    case "email.activity":
      return { type: `email.${config.activity || "opened"}`, name: config.campaign || "", properties: url };
    case "app.event": {
      const properties = {};
      for (const [prop, test] of Object.entries(config.where || {})) properties[prop] = sampleValue(test);
      return { type: "track", name: config.event || "", properties };
    }
    case "page.visited":
      return { type: "page", name: "", properties: url };
    case "field.changed": {
      const properties = {};
      if ("from" in config) properties.from = config.from;
      if ("to" in config) properties.to = config.to;
      return { type: "field.changed", name: config.field || "", properties };
    }
    case "tag.added":
    case "tag.removed":
      return { type: typeKey, name: config.tag || "", properties: {} };
    case "lead.created":
      return { type: "lead.created", name: "", properties: {} };
    case "form.submitted":
      return { type: "form.submitted", name: config.form || "", properties: {} };
    case "score.threshold": {
      const at = Number(config.threshold) || 0;
      const [before, after] = config.direction === "down" ? [at, at - 1] : [at - 1, at];
      const properties = config.category
        ? { category: config.category, category_from: before, category_to: after }
        : { from: before, to: after };
      return { type: "score.changed", name: "", properties };
    }
    case "grade.changed":
      return { type: "grade.changed", name: config.grade || "", properties: {} };
    default:
      return null;
  }
}

// A property value that passes an app event's `where` test.
function sampleValue(test) {
  const value = test.value;
  if (typeof value !== "number") return value;
  if (test.op === "gt") return value + 1;
  if (test.op === "lt") return value - 1;
  return value;
}

// Every event type a trigger can start on, for a test run when the flow has no
// configured trigger yet.
export const TRIGGER_EVENT_TYPES = [
  "track",
  "page",
  "form.submitted",
  "email.delivered",
  "email.opened",
  "email.clicked",
  "email.replied",
  "email.bounced",
  "email.unsubscribed",
  "email.complained",
  "segment.entered",
  "segment.left",
  "field.changed",
  "tag.added",
  "tag.removed",
  "lead.created",
  "score.changed",
  "grade.changed",
];

// What the server shows in place of a secret that is set (a schema property
// with "writeOnly"); saving it back keeps the stored secret of that node.
export const SECRET_SET = "********";

// A copied node gets a new id, so the server has no secret to keep for it: its
// masked secrets are left out (shown as not set) rather than pretending.
export function withoutMaskedSecrets(config, schema) {
  if (!config || typeof config !== "object" || !schema || !schema.properties) return config;
  const out = { ...config };
  for (const [key, spec] of Object.entries(schema.properties)) {
    if (!(key in out)) continue;
    if (spec.writeOnly && out[key] === SECRET_SET) delete out[key];
    else if (spec.type === "object") out[key] = withoutMaskedSecrets(out[key], spec);
  }
  return out;
}
