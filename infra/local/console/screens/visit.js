// Screen 3: the visit, Actions and Notes+, assign (steps 4 to 8).

import { state } from '../state.js';
import { t } from '../words.js';
import { $, checkedValues, locale, el, money, day, newIdempotencyKey, say, showError } from '../dom.js';
import { staffToken } from '../tokens.js';
import { getPaymentSettings, listInvoices, assignAction } from '../api.js';
import { scheduleInvoiceRefresh } from './chart.js';
import { refreshVisitActions, showAction, linkKey } from './tiles.js';

export function onOpenVisit() {
  $('#visit-window').hidden = false;
}

export function onOpenActionsNotes() {
  $('#actions-notes').hidden = false;
  $('#open-actions-notes').setAttribute('aria-pressed', 'true');
}

export async function onOpenPatientActions() {
  $('#patient-actions').hidden = false;
  state.actionsOpen = true;
  await refreshVisitActions();
}

/** "+ Assign actions": a new attempt of the form (and so a new Idempotency-Key). */
export async function onAssignActions() {
  state.assignAttempt = null;
  state.lastAssignable = null;
  $('#assign-form').hidden = false;
  $('#choose-payment-label').setAttribute('aria-pressed', 'false');
  $('#assign-invoices').hidden = true;
  $('#assign-notify').hidden = true;
  $('#assign-email').value = '';
  $('#assign-sms').value = '';
  $('#assign-submit').hidden = true;
  $('#assign-invoice-list').replaceChildren();
  await loadPaymentLabel();
}

export function closeAssignForm() {
  $('#assign-form').hidden = true;
  state.assignAttempt = null;
  $('#assign-actions').focus();
}

/** Staff read the clinic's settings for its label (it varies per clinic). */
export async function loadPaymentLabel() {
  try {
    state.settings = await getPaymentSettings(state.clinicId, await staffToken());
  } catch (err) {
    state.settings = null;
    if (err.code !== 'settings_not_found') throw err;
  }
  renderPaymentLabel();
}

export function renderPaymentLabel() {
  const s = state.settings;
  $('#choose-payment-label').textContent = s ? s.label[state.lang] : t('label_fallback');
  const account = s && s.stripe_account;
  let note = '';
  if (!s) note = t('no_settings');
  else if (!s.enabled) note = t('payments_off');
  // Stripe's word on the clinic's account: staff see why payments are refused.
  else if (account && !account.charges_enabled) note = t('payments_restricted', { reason: account.disabled_reason || '—' });
  $('#assign-label-note').textContent = note;
}

/** Step 7: the label is chosen; step 8 lists the invoices "Make a payment" made ready. */
export async function onChoosePaymentLabel() {
  $('#choose-payment-label').setAttribute('aria-pressed', 'true');
  const invoices = await listInvoices(state.patientId, 'selected');
  state.lastAssignable = invoices;
  renderAssignInvoices(invoices);
  $('#assign-invoices').hidden = false;
  $('#assign-notify').hidden = false;
  $('#assign-submit').hidden = false;
}

export function renderAssignInvoices(invoices) {
  const list = $('#assign-invoice-list');
  const ticked = new Set(checkedValues('assign-invoice', list));
  if (!invoices.length) {
    list.replaceChildren(el('p', { class: 'empty' }, t('no_selected')));
    return;
  }
  list.replaceChildren(el('ul', { class: 'invoice-rows' }, invoices.map((invoice) => {
    const boxId = `assign-box-${invoice.invoice_id}`;
    return el('li', { class: 'invoice-row', 'data-assign-invoice-id': invoice.invoice_id },
      el('input', { type: 'checkbox', name: 'assign-invoice', value: invoice.invoice_id, id: boxId, checked: ticked.has(invoice.invoice_id) }),
      el('label', { for: boxId, class: 'invoice-text' },
        el('span', { class: 'invoice-title' }, t('invoice', { id: invoice.invoice_id }), invoice.description ? ` — ${invoice.description}` : ''),
        el('span', { class: 'invoice-meta' }, `${day(invoice.service_date)} · ${money(invoice.amount, invoice.currency)}`)));
  })));
}

/** The contacts typed in step 3 (the server checks them: invalid_email, invalid_phone), or null. */
function readNotify() {
  const email = $('#assign-email').value.trim();
  const sms = $('#assign-sms').value.trim();
  if (!email && !sms) return null;
  return { ...(email ? { email } : {}), ...(sms ? { sms } : {}) };
}

/**
 * One Idempotency-Key per attempt of the form: resending the same request (a
 * timeout, a double click) replays the first answer instead of assigning
 * twice. A changed request needs a new key: the API refuses a key reused for
 * another body (409 idempotency_key_reused).
 */
function idempotencyKeyFor(input) {
  const fingerprint = JSON.stringify(input);
  if (!state.assignAttempt || state.assignAttempt.fingerprint !== fingerprint) {
    state.assignAttempt = { key: newIdempotencyKey(), fingerprint };
  }
  return state.assignAttempt.key;
}

export async function onAssignSubmit(event) {
  event.preventDefault();
  const invoiceIds = checkedValues('assign-invoice', $('#assign-invoice-list'));
  if (!invoiceIds.length) {
    showError({ message: t('tick_invoices') });
    return;
  }
  // The amount is never sent: the server adds up the stored invoices.
  const input = { patient_id: state.patientId, invoice_ids: invoiceIds, locale: locale() };
  const notify = readNotify();
  if (notify) input.notify = notify;
  const { action, replayed } = await assignAction(state.visitId, input, idempotencyKeyFor(input));
  // patient_url is only in this answer (the server keeps the token hashed). The link is the
  // patient's secret: a production EMR should not persist it in the browser. It is kept here
  // (for the tab's life) so a reload of the local console can still show it.
  if (action.patient_url) sessionStorage.setItem(linkKey(action.action_id), action.patient_url);
  showAction(action);
  closeAssignForm();
  say(replayed ? t('replayed') : t(input.notify ? 'assigned_sent' : 'assigned', { amount: money(action.amount, action.currency) }));
  scheduleInvoiceRefresh();
}
