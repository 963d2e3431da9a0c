// "Test on a lead": pick a lead, optionally make up the event that starts the
// flow, and see the path it would take with each step's effect. Nothing is
// written; the canvas highlights the path.
import { useEffect, useId, useMemo, useRef, useState } from "react";
import { gettext, interpolate } from "../i18n.js";
import { call, leadName } from "./api.js";
import { TRIGGER_EVENT_TYPES, triggerEvent } from "./graph.js";

const LEADS_LISTED = 10;
const SEARCH_DELAY_MS = 250;
// Each step's outcome, in the same form: what the step does with the lead.
function outcomeLabel(outcome) {
  switch (outcome) {
    case "matched":
      return gettext("Starts");
    case "would_apply":
      return gettext("Would do");
    case "no_change":
      return gettext("No change");
    case "yes":
      return gettext("Yes");
    case "no":
      return gettext("No");
    case "waited":
      return gettext("Waits");
    case "timeout":
      return gettext("Times out");
    case "ended":
      return gettext("Ends");
    default:
      return outcome;
  }
}

function LeadPicker({ leadsUrl, lead, onPick }) {
  const id = useId();
  const [query, setQuery] = useState("");
  const [found, setFound] = useState({ text: "", leads: [], error: null });
  const input = useRef(null);
  const text = query.trim();

  useEffect(() => {
    if (!text) return undefined;
    let stale = false;
    const timer = setTimeout(async () => {
      const params = new URLSearchParams({ q: text, page_size: String(LEADS_LISTED) });
      const result = await call(`${leadsUrl}?${params}`);
      if (stale) return;
      if (result.ok) setFound({ text, leads: (result.data.results || []).slice(0, LEADS_LISTED), error: null });
      else setFound({ text, leads: [], error: result.data?.error?.message || gettext("The search failed.") });
    }, SEARCH_DELAY_MS);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [text, leadsUrl]);

  if (lead) {
    return (
      <div className="lf-test-lead-chosen mb-2">
        <div className="small text-muted">{gettext("Lead")}</div>
        <div className="d-flex align-items-baseline gap-2">
          <span className="fw-semibold text-truncate" data-lead-id={lead.id}>
            {leadName(lead)}
          </span>
          {lead.email && lead.email !== leadName(lead) && (
            <span className="small text-muted text-truncate">{lead.email}</span>
          )}
          <button
            type="button"
            className="btn btn-link btn-sm p-0 ms-auto"
            onClick={() => {
              onPick(null);
              window.requestAnimationFrame(() => input.current && input.current.focus());
            }}
          >
            {gettext("Change")}
          </button>
        </div>
      </div>
    );
  }
  const shown = text && found.text === text;
  return (
    <div className="mb-2">
      <label className="form-label small mb-1" htmlFor={`${id}-search`}>
        {gettext("Lead")}
      </label>
      <input
        ref={input}
        id={`${id}-search`}
        type="search"
        className="form-control form-control-sm"
        placeholder={gettext("Search by name, email or company")}
        autoComplete="off"
        value={query}
        aria-controls={`${id}-results`}
        onChange={(e) => setQuery(e.target.value)}
      />
      <ul
        id={`${id}-results`}
        className="list-unstyled lf-test-leads mb-0"
        aria-label={gettext("Matching leads")}
        aria-live="polite"
      >
        {shown &&
          found.leads.map((l) => (
            <li key={l.id}>
              <button
                type="button"
                className="lf-test-lead"
                onClick={() => {
                  onPick(l);
                  setQuery("");
                }}
              >
                <span className="d-block text-truncate">{leadName(l)}</span>
                {l.email && l.email !== leadName(l) && (
                  <span className="d-block small text-muted text-truncate">{l.email}</span>
                )}
              </button>
            </li>
          ))}
        {shown && !found.error && found.leads.length === 0 && (
          <li className="small text-muted p-1">{gettext("No lead matches.")}</li>
        )}
        {shown && found.error && <li className="small text-danger p-1">{found.error}</li>}
      </ul>
    </div>
  );
}

function Result({ data, types, lead, summaries }) {
  const { trigger, entry, steps, notes } = data;
  const name = lead ? leadName(lead) : "";
  // A step as the canvas labels it, with the tested lead's name in place of {lead}.
  const stepTitle = (step) => {
    const label = types[step.type]?.label || step.type;
    const summary = (summaries && summaries[step.node]) || "";
    return summary ? `${label}: ${summary.split("{lead}").join(name)}` : label;
  };
  return (
    <section className="lf-test-result" aria-label={gettext("Test result")}>
      {name && (
        <h3 className="h6 mb-1 lf-test-title">
          {interpolate(gettext("What would happen to %(name)s"), { name }, true)}
        </h3>
      )}
      {trigger.matched ? (
        <p className="small mb-1">
          <span className="text-muted">{gettext("Trigger:")}</span> {trigger.summary}
        </p>
      ) : (
        <p className="alert alert-warning py-1 px-2 small mb-2 lf-test-trigger">{trigger.reason}</p>
      )}
      {trigger.matched && (
        <p className={`small mb-2 lf-test-entry ${entry.allowed ? "text-success" : "text-body-secondary"}`}>
          <span className="fw-semibold">
            {entry.allowed ? gettext("Would enter the flow now.") : gettext("Would not enter the flow now.")}
          </span>{" "}
          {entry.reason}
        </p>
      )}
      {steps.length > 0 && (
        <ol className="lf-test-steps">
          {steps.map((step, index) => (
            <li key={`${step.node}-${index}`} data-node-id={step.node} data-outcome={step.outcome}>
              <div className="d-flex align-items-baseline gap-2">
                <span className="lf-test-node text-truncate">{stepTitle(step)}</span>
                <span className={`badge lf-outcome lf-outcome-${step.outcome}`}>{outcomeLabel(step.outcome)}</span>
              </div>
              <div className="lf-test-effect">{step.effect}</div>
            </li>
          ))}
        </ol>
      )}
      {notes.length > 0 && (
        <ul className="lf-test-notes small text-muted">
          {notes.map((note) => (
            <li key={note}>{note}</li>
          ))}
        </ul>
      )}
    </section>
  );
}

export default function DryRunPanel({
  urls,
  types,
  summaries,
  triggers,
  readOnly,
  hidden,
  running,
  outcome,
  stale,
  onRun,
  onClear,
  onClose,
}) {
  const id = useId();
  const [lead, setLead] = useState(null);
  const [madeUp, setMadeUp] = useState(false);
  const [eventType, setEventType] = useState("");
  const [eventName, setEventName] = useState("");
  const [properties, setProperties] = useState("{}");
  const [formError, setFormError] = useState(null);
  const heading = useRef(null);
  const box = useRef(null);
  const results = useRef(null);

  // The event types the flow's triggers start on, each with the event it would
  // fill in; every trigger event type while no trigger is configured.
  const suggestions = useMemo(() => {
    const byType = new Map();
    for (const trigger of triggers) {
      const event = triggerEvent(trigger.type, trigger.config);
      if (event && !byType.has(event.type)) byType.set(event.type, event);
    }
    if (!byType.size) for (const type of TRIGGER_EVENT_TYPES) byType.set(type, { type, name: "", properties: {} });
    return byType;
  }, [triggers]);

  const fill = (type) => {
    const event = suggestions.get(type) || { type, name: "", properties: {} };
    setEventType(event.type);
    setEventName(event.name);
    setProperties(JSON.stringify(event.properties, null, 2));
  };

  useEffect(() => {
    if (!hidden && heading.current) heading.current.focus();
  }, [hidden]);

  // A new result scrolls into view within the panel (not the page).
  useEffect(() => {
    if (!outcome || !box.current || !results.current) return;
    const offset = results.current.getBoundingClientRect().top - box.current.getBoundingClientRect().top;
    box.current.scrollTop += offset - 8;
  }, [outcome]);

  const submit = (event) => {
    event.preventDefault();
    if (!lead) {
      setFormError(gettext("Choose a lead first."));
      return;
    }
    const body = { lead: lead.id };
    if (madeUp) {
      let parsed;
      try {
        parsed = properties.trim() ? JSON.parse(properties) : {};
      } catch {
        setFormError(gettext("Properties: not valid JSON."));
        return;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        setFormError(gettext('Properties: expected a JSON object, such as {"plan": "pro"}.'));
        return;
      }
      if (!eventType) {
        setFormError(gettext("Choose the event's type."));
        return;
      }
      body.event = { type: eventType, name: eventName.trim(), properties: parsed };
    }
    setFormError(null);
    onRun(body);
  };

  return (
    <aside
      id="lf-test-panel"
      ref={box}
      // "nokey": Delete and Backspace here are not the canvas's.
      className="lf-side lf-test nokey"
      aria-labelledby={`${id}-title`}
      hidden={hidden}
    >
      <div className="d-flex align-items-center mb-2">
        <h2 id={`${id}-title`} className="h6 mb-0" tabIndex={-1} ref={heading}>
          {gettext("Test on a lead")}
        </h2>
        <button type="button" className="btn-close ms-auto" aria-label={gettext("Close the test")} onClick={onClose} />
      </div>
      <p className="small text-muted mb-2">
        {readOnly
          ? gettext(
              "The path a lead would take through this version, and what each step would do. Nothing is changed or sent.",
            )
          : gettext(
              "The path a lead would take through this draft, and what each step would do. Nothing is changed or sent.",
            )}
      </p>
      <form onSubmit={submit} noValidate>
        <LeadPicker leadsUrl={urls.leads} lead={lead} onPick={setLead} />
        <fieldset className="mb-2">
          <legend className="form-label small mb-1">{gettext("Event that starts the flow")}</legend>
          <div className="form-check">
            <input
              className="form-check-input"
              type="radio"
              id={`${id}-latest`}
              name={`${id}-event`}
              checked={!madeUp}
              onChange={() => setMadeUp(false)}
            />
            <label className="form-check-label small" htmlFor={`${id}-latest`}>
              {gettext("The lead's latest matching event")}
            </label>
          </div>
          <div className="form-check">
            <input
              className="form-check-input"
              type="radio"
              id={`${id}-made-up`}
              name={`${id}-event`}
              checked={madeUp}
              onChange={() => {
                setMadeUp(true);
                if (!eventType) fill(suggestions.keys().next().value);
              }}
            />
            <label className="form-check-label small" htmlFor={`${id}-made-up`}>
              {gettext("A made-up event")}
            </label>
          </div>
        </fieldset>
        {madeUp && (
          <div className="lf-test-event mb-2">
            <label className="form-label small mb-1" htmlFor={`${id}-type`}>
              {gettext("Event type")}
            </label>
            <select
              id={`${id}-type`}
              className="form-select form-select-sm mb-1"
              value={eventType}
              onChange={(e) => fill(e.target.value)}
            >
              {[...suggestions.keys()].map((type) => (
                <option key={type} value={type}>
                  {type}
                </option>
              ))}
            </select>
            <label className="form-label small mb-1" htmlFor={`${id}-name`}>
              {gettext("Event name")}
            </label>
            <input
              id={`${id}-name`}
              className="form-control form-control-sm mb-1"
              value={eventName}
              maxLength={255}
              onChange={(e) => setEventName(e.target.value)}
            />
            <label className="form-label small mb-1" htmlFor={`${id}-properties`}>
              {gettext("Properties (JSON)")}
            </label>
            <textarea
              id={`${id}-properties`}
              className="form-control form-control-sm font-monospace"
              rows={3}
              spellCheck={false}
              value={properties}
              onChange={(e) => setProperties(e.target.value)}
            />
          </div>
        )}
        {formError && (
          <p className="small text-danger mb-2" role="alert">
            {formError}
          </p>
        )}
        <div className="d-flex gap-2 mb-2">
          <button type="submit" className="btn btn-sm btn-primary" disabled={running}>
            {running ? gettext("Running…") : gettext("Run")}
          </button>
          {outcome && (
            <button type="button" className="btn btn-sm btn-outline-secondary" onClick={onClear}>
              {gettext("Clear")}
            </button>
          )}
        </div>
      </form>
      <div ref={results} aria-live="polite">
        {outcome && outcome.error && (
          <ul className="alert alert-danger py-2 small mb-2 lf-test-errors" role="alert">
            {outcome.error.map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
        )}
        {outcome && outcome.data && stale && (
          <p className="small text-warning-emphasis mb-2">
            {gettext("The flow changed since this test: run it again to see the new path.")}
          </p>
        )}
        {outcome && outcome.data && <Result data={outcome.data} types={types} lead={lead} summaries={summaries} />}
      </div>
    </aside>
  );
}
