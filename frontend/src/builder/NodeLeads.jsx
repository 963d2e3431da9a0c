// The leads behind one of a published flow's counts on a node: the flow's
// enrollments with a step at that node in that state, each linked to the lead.
import { useCallback, useEffect, useRef, useState } from "react";
import { call, errorLines, leadName } from "./api.js";

const PAGE_SIZE = 20;
const HEADINGS = {
  entered: "Leads that reached",
  completed: "Leads that went past",
  waiting: "Leads waiting at",
  failed: "Leads that failed at",
};
const ENROLLMENT_STATUS = { active: "running", waiting: "waiting", completed: "completed", failed: "failed" };

export default function NodeLeads({ urls, nodeId, status, nodeLabel, onClose }) {
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const alive = useRef(true);
  const heading = useRef(null);

  const load = useCallback(
    async (url) => {
      setLoading(true);
      const result = await call(url);
      if (!alive.current) return;
      if (!result.ok) {
        setError(errorLines(result.data, "The leads could not be loaded."));
        setLoading(false);
        return;
      }
      const enrollments = result.data.results || [];
      // The enrollments name their leads by id only.
      const ids = [...new Set(enrollments.map((e) => e.lead))];
      const leads = await Promise.all(ids.map((id) => call(`${urls.leads}${id}/`)));
      if (!alive.current) return;
      const byId = new Map();
      leads.forEach((r, index) => {
        if (r.ok) byId.set(ids[index], r.data);
      });
      setRows((list) => [...list, ...enrollments.map((e) => ({ enrollment: e, lead: byId.get(e.lead) || null }))]);
      setNext(result.data.next || null);
      setLoading(false);
    },
    [urls],
  );

  useEffect(() => {
    alive.current = true;
    const params = new URLSearchParams({ node: nodeId, status, page_size: String(PAGE_SIZE) });
    load(`${urls.enrollments}?${params}`);
    if (heading.current) heading.current.focus();
    return () => {
      alive.current = false;
    };
  }, [urls, nodeId, status, load]);

  return (
    <aside className="lf-side lf-node-leads nokey" aria-labelledby="lf-node-leads-title">
      <div className="d-flex align-items-start gap-2 mb-2">
        <h2 id="lf-node-leads-title" className="h6 mb-0" tabIndex={-1} ref={heading}>
          {HEADINGS[status]} {nodeLabel}
        </h2>
        <button type="button" className="btn-close ms-auto" aria-label="Close the list" onClick={onClose} />
      </div>
      {error && (
        <ul className="alert alert-danger py-2 small" role="alert">
          {error.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
      <ul className="list-unstyled lf-node-leads-list mb-2">
        {rows.map(({ enrollment, lead }) => (
          <li key={enrollment.id}>
            <a href={`${urls.leadPage}${enrollment.lead}/`} className="d-block text-truncate">
              {lead ? leadName(lead) : `Lead ${enrollment.lead}`}
            </a>
            <span className="small text-muted">
              {lead && lead.email && lead.email !== leadName(lead) ? `${lead.email} · ` : ""}
              {ENROLLMENT_STATUS[enrollment.status] || enrollment.status}, enrolled{" "}
              {new Date(enrollment.created_at).toLocaleDateString()}
            </span>
          </li>
        ))}
      </ul>
      {loading && (
        <p className="small text-muted" role="status">
          Loading…
        </p>
      )}
      {!loading && !error && rows.length === 0 && <p className="small text-muted">No leads.</p>}
      {!loading && next && (
        <button type="button" className="btn btn-sm btn-outline-secondary" onClick={() => load(next)}>
          More
        </button>
      )}
    </aside>
  );
}
