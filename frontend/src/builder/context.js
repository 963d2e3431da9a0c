import { createContext } from "react";

// Node types by key, from the registry.
export const TypesContext = createContext({});
// Opens the list of leads behind one of a node's counts: (nodeId, "entered" | "waiting" | "failed").
export const NodeLeadsContext = createContext(null);
