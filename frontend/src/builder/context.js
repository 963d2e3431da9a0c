import { createContext } from "react";

// Node types by key, from the registry.
export const TypesContext = createContext({});
