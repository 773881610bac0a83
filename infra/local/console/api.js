// The API: one small function per call.

import { state } from './state.js';
import { api, seg } from './http.js';
import { staffToken, supportToken } from './tokens.js';

/** GET /clinics/{clinic_id}/payment-settings (staff of the clinic, or support). */
export async function getPaymentSettings(clinicId, token) {
  const { body } = await api('GET', `/clinics/${seg(clinicId)}/payment-settings`, { token });
  return body;
}

/** PUT /clinics/{clinic_id}/payment-settings (support): a full replacement. */
export async function putPaymentSettings(clinicId, settings) {
  const { body } = await api('PUT', `/clinics/${seg(clinicId)}/payment-settings`, { token: await supportToken(), body: settings });
  return body;
}

/** GET /patients/{patient_id}/invoices[?status=unprocessed|selected|pending|paid]. */
export async function listInvoices(patientId, status) {
  const query = status ? `?status=${seg(status)}` : '';
  const { body } = await api('GET', `/patients/${seg(patientId)}/invoices${query}`, { token: await staffToken() });
  return body.invoices;
}

/** POST /patients/{patient_id}/invoices/select ("Make a payment"): answers {invoices, total}. */
export async function selectInvoices(patientId, invoiceIds) {
  const { body } = await api('POST', `/patients/${seg(patientId)}/invoices/select`, {
    token: await staffToken(),
    body: { invoice_ids: invoiceIds },
  });
  return body;
}

/**
 * POST /visits/{visit_id}/actions with an Idempotency-Key: a repeat (a
 * timeout, a double click) gets the first answer again, marked
 * `Idempotent-Replayed: true` and without `patient_url`.
 */
export async function assignAction(visitId, input, idempotencyKey) {
  const { body, headers } = await api('POST', `/visits/${seg(visitId)}/actions`, {
    token: await staffToken(),
    headers: { 'Idempotency-Key': idempotencyKey },
    body: input,
  });
  return { action: body, replayed: headers.get('Idempotent-Replayed') === 'true' };
}

/** POST /clinics/{clinic_id}/stripe-onboarding (support): {account_id, url, expires_at}; open `url` at once. */
export async function startOnboarding(clinicId) {
  const { body } = await api('POST', `/clinics/${seg(clinicId)}/stripe-onboarding`, { token: await supportToken() });
  return body;
}

/** GET /clinics/{clinic_id}/payouts[?cursor=…]: {payouts, next_cursor}. */
export async function listPayouts(clinicId, cursor) {
  const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
  const { body } = await api('GET', `/clinics/${seg(clinicId)}/payouts${query}`, { token: await staffToken() });
  return body;
}

/** GET /clinics/{clinic_id}/payouts/{payout_id}: the payout and its lines (JSON), or its CSV as a Blob. */
export async function getPayout(clinicId, payoutId, format) {
  const { body } = await api('GET', `/clinics/${seg(clinicId)}/payouts/${seg(payoutId)}`, {
    token: await staffToken(),
    accept: format === 'csv' ? 'text/csv' : 'application/json',
  });
  return body;
}

/** GET /visits/{visit_id}/actions: the visit's actions (never with `patient_url`). */
export async function listVisitActions(visitId) {
  const { body } = await api('GET', `/visits/${seg(visitId)}/actions`, { token: await staffToken() });
  return body.actions;
}

/**
 * GET /actions/{action_id}, conditionally: it sends the last ETag in
 * If-None-Match, and 304 Not Modified (no body) means "keep what you have".
 * Answers are `no-store`, so the client keeps the tag and the body itself.
 * (This console reads on events; a client that polls saves the body each time.)
 */
export async function getAction(actionId) {
  const cached = state.etags.get(actionId);
  const { status, headers, body } = await api('GET', `/actions/${seg(actionId)}`, {
    token: await staffToken(),
    headers: cached ? { 'If-None-Match': cached.etag } : {},
  });
  if (status === 304 && cached) return cached.action;
  const etag = headers.get('ETag');
  if (etag) state.etags.set(actionId, { etag, action: body });
  return body;
}

/** POST /actions/{action_id}/send: the link again, to these contacts ({} for the action's own); 202. */
export async function sendLink(actionId, notify) {
  const { body } = await api('POST', `/actions/${seg(actionId)}/send`, { token: await staffToken(), body: notify });
  return body;
}

/** POST /actions/{action_id}/cancel (no body needed): the invoices go back to `selected`. */
export async function cancelAction(actionId) {
  const { body } = await api('POST', `/actions/${seg(actionId)}/cancel`, { token: await staffToken() });
  return body;
}

/**
 * POST /actions/{action_id}/refund, `{"amount": cents}` or no body for all
 * that remains. No Idempotency-Key here: the API takes none for refunds and
 * treats a repeat within a minute as the same refund.
 */
export async function refundAction(actionId, amountCents) {
  const { body } = await api('POST', `/actions/${seg(actionId)}/refund`, {
    token: await staffToken(),
    body: amountCents === null ? undefined : { amount: amountCents },
  });
  return body;
}

/** GET /actions/{action_id}/receipt[.pdf]?lang=fr|en: the patient's receipt, as a Blob. */
export async function getReceipt(actionId, format) {
  const query = new URLSearchParams({ lang: state.lang });
  const path = format === 'pdf' ? 'receipt.pdf' : 'receipt';
  const { body } = await api('GET', `/actions/${seg(actionId)}/${path}?${query}`, {
    token: await staffToken(),
    accept: format === 'pdf' ? 'application/pdf' : 'text/html',
  });
  return body;
}

/** Local only: GET /_local/outbox?clinic=…, every message the clinic's patients would have got, oldest first. */
export async function getOutbox(clinicId) {
  const { body } = await api('GET', `/_local/outbox?clinic=${seg(clinicId)}`, { token: await staffToken() });
  return body.messages;
}

/**
 * Local only: GET /_local/events?clinic=… (Server-Sent Events), as a
 * streaming Response. The server sends only what happens from now on (no
 * resumption), so the reader re-reads what it shows after each reconnect.
 */
export async function openEventStream(clinicId, signal) {
  return api('GET', `/_local/events?clinic=${seg(clinicId)}`, {
    token: await staffToken(),
    accept: 'text/event-stream',
    raw: true,
    signal,
  });
}
