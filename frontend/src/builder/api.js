import { gettext, interpolate } from "../i18n.js";

// JSON requests to the API with the session cookie (and the CSRF token on writes).
export async function call(url, { method = "GET", body, csrf } = {}) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...(method !== "GET" ? { "X-CSRFToken": csrf } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  let data;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, ok: response.ok, data };
}

// The API's error body as lines: the message, then each field's messages.
export function errorLines(data, fallback) {
  const error = data && data.error;
  if (!error) return [fallback];
  const lines = [];
  for (const [path, messages] of Object.entries(error.fields || {})) {
    for (const message of messages) lines.push(path ? `${path}: ${message}` : message);
  }
  return lines.length ? lines : [error.message || fallback];
}

export function leadName(lead) {
  const name = [lead.first_name, lead.last_name].filter(Boolean).join(" ");
  return name || lead.email || interpolate(gettext("Lead %(id)s"), { id: lead.id }, true);
}

// Tells the page around the canvas (its header: status, versions, unpublished
// changes) that the flow changed on the server, so it reloads itself.
export function flowChanged() {
  document.body.dispatchEvent(new CustomEvent("leadflow:flow-changed"));
}
