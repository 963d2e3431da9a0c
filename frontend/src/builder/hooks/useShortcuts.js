import { useEffect } from "react";

function typing(target) {
  const tag = target && target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
}

// Ctrl/Cmd+Z undoes, Ctrl/Cmd+Shift+Z or Ctrl/Cmd+Y redoes, Ctrl/Cmd+C and V
// copy and paste nodes; not while the user types in a field, where they keep
// their usual meaning. A read-only canvas only copies.
export default function useShortcuts({ readOnly, undo, redo, copy, paste }) {
  useEffect(() => {
    const onKey = (event) => {
      if (typing(event.target)) return;
      const mod = event.ctrlKey || event.metaKey;
      if (!mod) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey && !readOnly) {
        event.preventDefault();
        undo();
      } else if (((key === "z" && event.shiftKey) || key === "y") && !readOnly) {
        event.preventDefault();
        redo();
      } else if (key === "c") {
        copy();
      } else if (key === "v" && !readOnly) {
        event.preventDefault();
        paste();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [undo, redo, copy, paste, readOnly]);
}
