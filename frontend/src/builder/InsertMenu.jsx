import { useEffect, useRef, useState } from "react";
import { gettext } from "../i18n.js";
import { kindGroups } from "./graph.js";

// The steps that can go where a "+" was clicked: after an output, anything but
// a trigger; on a connection, only steps that lead on (not an exit).
export default function InsertMenu({ nodeTypes, place, anchor, box, onPick, onClose }) {
  const [query, setQuery] = useState("");
  const menu = useRef(null);
  const search = useRef(null);
  useEffect(() => {
    if (search.current) search.current.focus();
    const away = (event) => {
      if (menu.current && !menu.current.contains(event.target)) onClose();
    };
    document.addEventListener("pointerdown", away, true);
    return () => document.removeEventListener("pointerdown", away, true);
  }, [onClose]);
  const q = query.trim().toLowerCase();
  const fits = (t) =>
    t.kind !== "trigger" &&
    (!place.edge || t.outputs.length > 0) &&
    (!q || t.label.toLowerCase().includes(q) || t.description.toLowerCase().includes(q));
  const at = anchor;
  const left = Math.max(8, Math.min(at.left + at.width / 2 - 130 - box.left, box.width - 268));
  const below = at.bottom + 6 - box.top;
  const top = below + 320 > box.height ? Math.max(8, at.top - box.top - 326) : below;
  const groups = kindGroups()
    .map((group) => ({ ...group, items: nodeTypes.filter((t) => group.kinds.includes(t.kind) && fits(t)) }))
    .filter((group) => group.items.length > 0);
  const first = groups.length ? groups[0].items[0].key : null;
  return (
    <div
      ref={menu}
      className="lf-insert-menu nokey"
      role="dialog"
      aria-label={gettext("Add a step")}
      style={{ left, top }}
      onKeyDown={(event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          onClose();
        }
      }}
    >
      <input
        ref={search}
        type="search"
        className="form-control form-control-sm mb-2"
        placeholder={gettext("Search steps")}
        aria-label={gettext("Search steps")}
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Enter" && first) {
            event.preventDefault();
            onPick(first);
          }
        }}
      />
      {groups.map((group) => (
        <section key={group.key}>
          <h2 className="lf-palette-title">{group.title}</h2>
          <ul className="list-unstyled mb-2">
            {group.items.map((t) => (
              <li key={t.key}>
                <button
                  type="button"
                  className={`lf-palette-item lf-kind-${t.kind}`}
                  title={t.description}
                  data-node-type={t.key}
                  onClick={() => onPick(t.key)}
                >
                  {t.label}
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
      {!groups.length && <p className="small text-muted mb-0">{gettext("No step matches.")}</p>}
    </div>
  );
}
