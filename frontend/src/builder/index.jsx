// The flow builder: one React island inside the server-rendered page. The page
// embeds everything the canvas starts with as JSON (#builder-data).
import "@xyflow/react/dist/style.css";
import "./builder.css";
import { ReactFlowProvider } from "@xyflow/react";
import { createRoot } from "react-dom/client";
import Builder from "./Builder.jsx";

function mount() {
  const root = document.getElementById("builder");
  const source = document.getElementById("builder-data");
  if (!root || !source) return;
  const initial = JSON.parse(source.textContent);
  createRoot(root).render(
    <ReactFlowProvider>
      <Builder initial={initial} />
    </ReactFlowProvider>,
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
