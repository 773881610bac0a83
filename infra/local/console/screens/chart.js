// Screen 2: the patient's chart, Private billing (steps 1 to 3).

import { INVOICE_GROUPS, state } from '../state.js';
import { t, invoiceStatusWords } from '../words.js';
import { $, $$, checkedValues, el, money, dateTime, day, say, showError } from '../dom.js';
import { listInvoices, selectInvoices } from '../api.js';

export async function onOpenPrivateBilling() {
  $('#private-billing').hidden = false;
  state.billingOpen = true;
  await loadInvoices();
}

/** Reads the list (with the status filter, if one is chosen); a late answer to an older read is dropped. */
export async function loadInvoices() {
  const read = ++state.invoiceReads;
  const invoices = await listInvoices(state.patientId, $('#invoice-filter').value || undefined);
  if (read !== state.invoiceReads) return;
  state.lastInvoices = invoices;
  renderInvoices(invoices);
}

/**
 * Draws the list grouped by status. The list is redrawn on every live event,
 * so rows that did not change are kept as they are (the same elements: a
 * click or the keyboard focus on them is not lost), and ticks are kept.
 */
export function renderInvoices(invoices) {
  const list = $('#invoice-list');
  const ticked = new Set(checkedValues('invoice', list));
  const oldRows = new Map($$('[data-invoice-id]', list).map((row) => [row.dataset.invoiceId, row]));
  const oldGroups = new Map($$('.invoice-group', list).map((group) => [group.dataset.group, group]));
  const groups = INVOICE_GROUPS.map((status) => {
    const rows = invoices.filter((invoice) => invoice.status === status).map((invoice) => {
      const old = oldRows.get(invoice.invoice_id);
      return old && old.dataset.sig === rowSignature(invoice) ? old : invoiceRow(invoice, ticked);
    });
    if (!rows.length) return null;
    const titleId = `invoice-group-${status}`;
    const group = oldGroups.get(status) || el('div', { class: 'invoice-group', 'data-group': status },
      el('h4', { id: titleId }), el('ul', { class: 'invoice-rows', 'aria-labelledby': titleId }));
    $('h4', group).textContent = t(`group_${status}`);
    replaceChildrenIfChanged($('ul', group), rows);
    return group;
  }).filter(Boolean);
  replaceChildrenIfChanged(list, groups.length ? groups : [el('p', { class: 'empty' }, t('no_invoices'))]);
}

/** What a row shows; a row is redrawn only when this changes. */
const rowSignature = (invoice) => JSON.stringify([state.lang, invoice]);

/** Moves nodes only when the children differ (moving a focused element would blur it). */
function replaceChildrenIfChanged(parent, children) {
  const same = parent.children.length === children.length && children.every((child, i) => parent.children[i] === child);
  if (!same) parent.replaceChildren(...children);
}

function invoiceRow(invoice, ticked) {
  const id = invoice.invoice_id;
  const details = [
    el('span', { class: 'invoice-title' }, t('invoice', { id }), invoice.description ? ` — ${invoice.description}` : ''),
    el('span', { class: 'invoice-meta' },
      `${day(invoice.service_date)} · ${money(invoice.amount, invoice.currency)}`,
      invoice.action_id ? ` · ${t('in_action', { id: invoice.action_id })}` : '',
      invoice.paid_at ? ` · ${t('paid_on', { at: dateTime(invoice.paid_at) })}` : ''),
  ];
  const status = el('span', { class: 'invoice-status', 'data-status': invoice.status }, invoiceStatusWords(invoice.status));
  const sig = rowSignature(invoice);
  if (invoice.status !== 'unprocessed') {
    return el('li', { class: 'invoice-row', 'data-invoice-id': id, 'data-sig': sig }, el('span', { class: 'invoice-text' }, details), status);
  }
  const boxId = `invoice-box-${id}`;
  return el('li', { class: 'invoice-row', 'data-invoice-id': id, 'data-sig': sig },
    el('input', { type: 'checkbox', name: 'invoice', value: id, id: boxId, checked: ticked.has(id) }),
    el('label', { for: boxId, class: 'invoice-text' }, details),
    status);
}

/** "Make a payment": the ticked invoices become `selected`; the answer carries their total. */
export async function onMakePayment() {
  const ids = checkedValues('invoice', $('#invoice-list'));
  if (!ids.length) {
    showError({ message: t('tick_invoices') });
    return;
  }
  const selection = await selectInvoices(state.patientId, ids);
  state.lastSelection = selection;
  renderSelectionTotal(selection);
  say(t('ready_to_collect'));
  await loadInvoices();
}

export function renderSelectionTotal(selection) {
  $('#selection-total').textContent = selection
    ? t('selection_total', {
      total: money(selection.total.amount, selection.total.currency),
      ids: selection.invoices.map((invoice) => invoice.invoice_id).join(', '),
    })
    : '';
}

let invoiceRefreshTimer = null;
/** Several events in a burst cause one invoice read. */
export function scheduleInvoiceRefresh() {
  if (!state.billingOpen) return;
  clearTimeout(invoiceRefreshTimer);
  invoiceRefreshTimer = setTimeout(() => loadInvoices().catch(showError), 150);
}
