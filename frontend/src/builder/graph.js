// Conversions between the server's graph JSON and React Flow's nodes and
// edges, the rules a connection must obey, and the layered auto-layout.
import dagre from "@dagrejs/dagre";

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

export function canvasEdge(edge) {
  const handle = edge.sourceHandle || "next";
  return {
    id: edge.id,
    source: edge.source,
    sourceHandle: handle,
    target: edge.target,
    label: handle === "next" ? undefined : handle,
  };
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
  const label = type ? type.label : "Unknown node";
  return summary ? `${label}: ${summary}` : label;
}

// Why a connection may not be made, or null when it may.
export function connectionProblem(connection, nodes, edges, types) {
  const { source, target } = connection;
  const handle = connection.sourceHandle || "next";
  if (!source || !target) return "Connect an output to an input.";
  if (source === target) return "A node cannot lead to itself.";
  const targetNode = nodes.find((n) => n.id === target);
  const targetType = targetNode && types[targetNode.data.nodeType];
  if (!targetType) return "Unknown node.";
  if (targetType.kind === "trigger") return "Triggers start a flow; nothing leads into them.";
  if (edges.some((e) => e.source === source && (e.sourceHandle || "next") === handle)) {
    return "This output is already connected.";
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
    if (id === source) return "That would make a loop.";
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

export const KIND_GROUPS = [
  { title: "Triggers", kinds: ["trigger"] },
  { title: "Actions", kinds: ["action"] },
  { title: "Logic", kinds: ["condition", "wait", "exit"] },
];
