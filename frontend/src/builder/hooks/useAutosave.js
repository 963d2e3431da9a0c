import { useCallback, useEffect, useRef, useState } from "react";
import { gettext } from "../../i18n.js";
import { call, flowChanged } from "../api.js";
import { toGraph } from "../graph.js";

// How long the canvas waits after the last change before it saves the draft.
const AUTOSAVE_MS = 1200;

// The draft's saving: every change to the graph calls `touched`, which counts it;
// the draft is saved a moment after the last change (or at once with `save`),
// and leaving the page with unsaved changes asks first. Each save sends the
// revision the canvas last saw: when the draft was saved elsewhere since (409),
// the canvas stops saving and says so, rather than overwrite it.
//
// `saveState` is "saved", "unsaved", "saving", "error" or "conflict"; `changes`
// counts the changes made since the page was opened.
export default function useAutosave({ initial, readOnly, nodesRef, edgesRef, setNotice }) {
  const [saveState, setSaveState] = useState("saved");
  const [changes, setChanges] = useState(0);
  const revision = useRef(initial.revision);
  const saving = useRef(null);
  const savedChanges = useRef(0);
  const conflict = useRef(false);

  const touched = useCallback(() => {
    setChanges((n) => n + 1);
    setSaveState((s) => (s === "conflict" ? s : "unsaved"));
  }, []);

  const save = useCallback(async () => {
    if (readOnly || conflict.current) return false;
    if (saving.current) await saving.current;
    const upTo = changes;
    const graph = toGraph(nodesRef.current, edgesRef.current);
    setSaveState("saving");
    const request = call(initial.urls.draft, {
      method: "PUT",
      body: { graph, revision: revision.current },
      csrf: initial.csrfToken,
    });
    saving.current = request;
    const result = await request;
    saving.current = null;
    if (result.status === 409) {
      conflict.current = true;
      setSaveState("conflict");
      setNotice({
        kind: "danger",
        text: gettext(
          "This flow was saved in another tab or by someone else since you opened it. Your changes here are not saved: reload the page to see the latest draft.",
        ),
      });
      return false;
    }
    if (!result.ok) {
      setSaveState("error");
      setNotice({ kind: "danger", text: result.data?.error?.message || gettext("The draft could not be saved.") });
      return false;
    }
    revision.current = result.data.revision;
    savedChanges.current = upTo;
    flowChanged();
    setSaveState((s) => (s === "saving" ? "saved" : s));
    return true;
  }, [readOnly, changes, initial, nodesRef, edgesRef, setNotice]);

  useEffect(() => {
    if (readOnly || changes === savedChanges.current || conflict.current) return undefined;
    const timer = setTimeout(save, AUTOSAVE_MS);
    return () => clearTimeout(timer);
  }, [changes, save, readOnly]);

  useEffect(() => {
    if (changes !== savedChanges.current && saveState === "saved") setSaveState("unsaved");
  }, [changes, saveState]);

  useEffect(() => {
    const warn = (event) => {
      if (changes !== savedChanges.current && !conflict.current) {
        event.preventDefault();
        event.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [changes]);

  return { saveState, changes, touched, save };
}
