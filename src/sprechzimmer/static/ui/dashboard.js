// @ts-check
/** The therapist's dashboard: open sessions, see who waits, admit. */
import { loadCatalog, t } from "./i18n.js";
import { chime } from "./chime.js";

const form = /** @type {HTMLFormElement} */ (document.getElementById("new-session"));
const rows = /** @type {HTMLElement} */ (document.getElementById("session-rows"));
const invite = /** @type {HTMLElement} */ (document.getElementById("invite"));
const inviteUrl = /** @type {HTMLInputElement} */ (document.getElementById("invite-url"));
const startCall = /** @type {HTMLAnchorElement} */ (document.getElementById("start-call"));
const formError = /** @type {HTMLElement} */ (document.getElementById("form-error"));
/** @type {Set<string>} */
let waitingBefore = new Set();

/** @param {string} path @param {object} [body] */
async function api(path, body) {
  const response = await fetch(path, {
    method: body ? "POST" : "GET",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  if (response.status === 401) {
    location.assign("/login");
    throw new Error("logged out");
  }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data?.error?.message || response.statusText);
  return data;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.hidden = true;
  const data = new FormData(form);
  try {
    const session = await api("/api/sessions", {
      client_id: String(data.get("client_id") || ""),
      relay_only: data.get("relay_only") === "on",
    });
    inviteUrl.value = session.invite_url;
    startCall.href = session.therapist_url;
    invite.hidden = false;
    form.reset();
    await refresh();
  } catch (error) {
    formError.textContent = t("The session could not be opened.");
    formError.hidden = false;
  }
});

document.getElementById("copy-invite")?.addEventListener("click", async () => {
  inviteUrl.select();
  try {
    await navigator.clipboard.writeText(inviteUrl.value);
  } catch {
    document.execCommand("copy");
  }
});

/** @param {any} session */
function row(session) {
  const tr = document.createElement("tr");
  tr.dataset.session = session.id;
  const client = document.createElement("td");
  client.textContent = session.client_id;
  const opened = document.createElement("td");
  // Dates in the page's language, not the browser's, like the text around them.
  const openedAt = new Date(session.created_at + "Z");
  opened.textContent = openedAt.toLocaleString(document.documentElement.lang);
  const state = document.createElement("td");
  const actions = document.createElement("td");
  if (session.state !== "open") {
    state.textContent = session.state === "declined" ? t("Declined") : t("Ended");
  } else if (session.client_waiting) {
    tr.classList.add("waiting");
    state.textContent = session.waiting_name
      ? t("{name} is waiting", { name: session.waiting_name })
      : t("Client is waiting");
    actions.append(button(t("Admit"), () => act(session.id, "admit"), "admit"));
    actions.append(button(t("Decline"), () => act(session.id, "decline"), "decline"));
  } else {
    state.textContent = session.client_in_call ? t("In the call") : t("Open");
  }
  if (session.state === "open") {
    const link = document.createElement("a");
    link.href = session.therapist_url;
    link.textContent = t("Go to the session");
    actions.append(link);
  }
  tr.append(client, opened, state, actions);
  return tr;
}

/** @param {string} label @param {() => void} onclick @param {string} testid */
function button(label, onclick, testid) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.dataset.testid = testid;
  element.addEventListener("click", onclick);
  return element;
}

/** @param {string} id @param {string} action */
async function act(id, action) {
  try {
    await api(`/api/sessions/${id}/${action}`, {});
  } finally {
    await refresh();
  }
}

async function refresh() {
  const { sessions } = await api("/api/sessions");
  rows.replaceChildren(...sessions.map(row));
  const waiting = new Set(
    sessions.filter((/** @type {any} */ s) => s.client_waiting).map((/** @type {any} */ s) => s.id),
  );
  const arrived = [...waiting].some((id) => !waitingBefore.has(id));
  if (arrived) chime();
  document.title = waiting.size ? `(${waiting.size}) Sprechzimmer` : "Sprechzimmer";
  waitingBefore = waiting;
}

const billingMonth = /** @type {HTMLInputElement} */ (document.getElementById("billing-month"));
const billingSummary = /** @type {HTMLElement} */ (document.getElementById("billing-summary"));

async function showBilling() {
  const month = billingMonth.value;
  if (!/^\d{4}-\d{2}$/.test(month)) return;
  const rows = await api(`/api/billing?month=${month}`);
  const row = rows[0] ?? { sessions: 0, billable_minutes: 0, interruptions: 0 };
  billingSummary.textContent = t(
    "{sessions} sessions, {minutes} billable minutes, {interruptions} interruptions",
    {
      sessions: row.sessions,
      minutes: row.billable_minutes,
      interruptions: row.interruptions,
    },
  );
}

billingMonth.value = new Date().toISOString().slice(0, 7);
billingMonth.addEventListener("change", () => showBilling().catch(() => {}));

await loadCatalog();
await refresh();
await showBilling();
setInterval(() => refresh().catch(() => {}), 3000);
