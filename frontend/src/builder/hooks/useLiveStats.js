import { useEffect } from "react";
import { call } from "../api.js";

const STATS_MS = 5000;
// A node no lead has reached yet: its counts are there, at zero.
const NO_LEADS = { entered: 0, completed: 0, waiting: 0, failed: 0 };

// The counts on a published flow's nodes (entered, completed, waiting, failed),
// fetched now and every few seconds. A node whose counts did not change keeps
// its object, so React Flow does not redraw it.
export default function useLiveStats({ initial, versionNumber, setNodes }) {
  useEffect(() => {
    if (!initial.urls.stats || versionNumber == null) return undefined;
    let stopped = false;
    const refresh = async () => {
      const result = await call(initial.urls.stats);
      if (stopped || !result.ok) return;
      const byNode = result.data.nodes || {};
      setNodes((list) =>
        list.map((n) => {
          const stats = byNode[n.id] || NO_LEADS;
          const same = JSON.stringify(stats) === JSON.stringify(n.data.stats);
          return same ? n : { ...n, data: { ...n.data, stats } };
        }),
      );
    };
    refresh();
    const timer = setInterval(refresh, STATS_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [initial, versionNumber, setNodes]);
}
