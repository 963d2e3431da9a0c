import { useState } from "react";
import { gettext } from "../i18n.js";
import { kindGroups } from "./graph.js";

export const DRAG_TYPE = "application/x-leadflow-node";

export default function Palette({ nodeTypes, onAdd, disabled }) {
  const [query, setQuery] = useState("");
  const q = query.trim().toLowerCase();
  const matches = (t) => !q || t.label.toLowerCase().includes(q) || t.description.toLowerCase().includes(q);
  return (
    <aside className="lf-palette" aria-label={gettext("Node palette")}>
      <input
        type="search"
        className="form-control form-control-sm mb-2"
        placeholder={gettext("Search nodes")}
        aria-label={gettext("Search nodes")}
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {kindGroups().map((group) => {
        const items = nodeTypes.filter((t) => group.kinds.includes(t.kind) && matches(t));
        if (!items.length) return null;
        return (
          <section key={group.key}>
            <h2 className="lf-palette-title">{group.title}</h2>
            <ul className="list-unstyled mb-3">
              {items.map((t) => (
                <li key={t.key}>
                  <button
                    type="button"
                    className={`lf-palette-item lf-kind-${t.kind}`}
                    draggable={!disabled}
                    disabled={disabled}
                    title={t.description}
                    data-node-type={t.key}
                    onDragStart={(e) => {
                      e.dataTransfer.setData(DRAG_TYPE, t.key);
                      e.dataTransfer.effectAllowed = "move";
                    }}
                    onClick={() => onAdd(t.key)}
                  >
                    {t.label}
                  </button>
                </li>
              ))}
            </ul>
          </section>
        );
      })}
    </aside>
  );
}
