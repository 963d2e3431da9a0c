import { createContext } from "react";

// Node types by key, from the registry.
export const TypesContext = createContext({});
// Opens the list of leads behind one of a node's counts: (nodeId, "entered" | "waiting" | "failed").
export const NodeLeadsContext = createContext(null);
// Adding a step after an output or on a connection: `open({ source, handle } | { edge }, anchor)`
// opens the step menu there; `connected` holds "<node>:<handle>" for each output in use.
export const InsertContext = createContext(null);
