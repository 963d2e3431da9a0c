# Flow, FlowVersion, the node registry and the engine live here (see DESIGN.md).
