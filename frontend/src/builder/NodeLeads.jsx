// The leads behind one of a published flow's counts on a node: the flow's
// enrollments with a step at that node in that state, each linked to the lead.
import { useCallback, useEffect, useRef, useState } from "react";
import { formatDate, gettext, interpolate } from "../i18n.js";
import { call, errorLines, leadName } from "./api.js";

const PAGE_SIZE = 20;

function headingText(status, node) {
  switch (status) {
    case "entered":
      return interpolate(gettext("Leads that reached %(node)s"), { node }, true);
    case "completed":
      return interpolate(gettext("Leads that went past %(node)s"), { node }, true);
    case "waiting":
      return interpolate(gettext("Leads waiting at %(node)s"), { node }, true);
    case "failed":
      return interpolate(gettext("Leads that failed at %(node)s"), { node }, true);
    default:
      return node;
  }
}

// An enrollment's state and when it started, e.g. "running, enrolled 5/6/2026".
function enrollmentText(status, createdAt) {
  const date = formatDate(createdAt);
  switch (status) {
    case "active":
      return interpolate(gettext("running, enrolled %(date)s"), { date }, true);
    case "waiting":
      return interpolate(gettext("waiting, enrolled %(date)s"), { date }, true);
    case "completed":
      return interpolate(gettext("completed, enrolled %(date)s"), { date }, true);
    case "failed":
      return interpolate(gettext("failed, enrolled %(date)s"), { date }, true);
    default:
      return interpolate(gettext("%(status)s, enrolled %(date)s"), { status, date }, true);
  }
}

// One page of enrollments, each with its lead (null when the lead could not be
// loaded), or the error; null when the list was closed before it arrived, so
// that the leads are not fetched for nothing.
async function fetchPage(urls, url, alive) {
  const result = await call(url);
  if (!alive.current) return null;
  if (!result.ok) return { error: errorLines(result.data, gettext("The leads could not be loaded.")) };
  const enrollments = result.data.results || [];
  // The enrollments name their leads by id only.
  const ids = [...new Set(enrollments.map((e) => e.lead))];
  const leads = await Promise.all(ids.map((id) => call(`${urls.leads}${id}/`)));
  if (!alive.current) return null;
  const byId = new Map();
  leads.forEach((r, index) => {
    if (r.ok) byId.set(ids[index], r.data);
  });
  return {
    rows: enrollments.map((e) => ({ enrollment: e, lead: byId.get(e.lead) || null })),
    next: result.data.next || null,
  };
}

export default function NodeLeads({ urls, nodeId, status, nodeLabel, onClose }) {
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const alive = useRef(true);
  const heading = useRef(null);

  // A page that arrives after the list was closed is dropped.
  const show = useCallback((page) => {
    if (!page || !alive.current) return;
    if (page.error) setError(page.error);
    else {
      setRows((list) => [...list, ...page.rows]);
      setNext(page.next);
    }
    setLoading(false);
  }, []);
  const more = () => {
    setLoading(true);
    fetchPage(urls, next, alive).then(show);
  };

  useEffect(() => {
    alive.current = true;
    const params = new URLSearchParams({ node: nodeId, status, page_size: String(PAGE_SIZE) });
    fetchPage(urls, `${urls.enrollments}?${params}`, alive).then(show);
    if (heading.current) heading.current.focus();
    return () => {
      alive.current = false;
    };
  }, [urls, nodeId, status, show]);

  return (
    <aside className="lf-side lf-node-leads nokey" aria-labelledby="lf-node-leads-title">
      <div className="d-flex align-items-start gap-2 mb-2">
        <h2 id="lf-node-leads-title" className="h6 mb-0" tabIndex={-1} ref={heading}>
          {headingText(status, nodeLabel)}
        </h2>
        <button type="button" className="btn-close ms-auto" aria-label={gettext("Close the list")} onClick={onClose} />
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
              {lead ? leadName(lead) : interpolate(gettext("Lead %(id)s"), { id: enrollment.lead }, true)}
            </a>
            <span className="small text-muted">
              {lead && lead.email && lead.email !== leadName(lead) ? `${lead.email} · ` : ""}
              {enrollmentText(enrollment.status, enrollment.created_at)}
            </span>
          </li>
        ))}
      </ul>
      {loading && (
        <p className="small text-muted" role="status">
          {gettext("Loading…")}
        </p>
      )}
      {!loading && !error && rows.length === 0 && <p className="small text-muted">{gettext("No leads.")}</p>}
      {!loading && next && (
        <button type="button" className="btn btn-sm btn-outline-secondary" onClick={more}>
          {gettext("More")}
        </button>
      )}
    </aside>
  );
}
