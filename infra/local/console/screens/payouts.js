// Screen 5: the clinic's payouts, each traced to the invoices it paid, net
// of Stripe's fees, refunds and disputes; a payout's lines as CSV for the
// bookkeeper.

import { state } from '../state.js';
import { t } from '../words.js';
import { $, el, money, dateTime, say } from '../dom.js';
import { listPayouts, getPayout } from '../api.js';

export async function loadPayouts() {
  const page = await listPayouts(state.clinicId);
  state.lastPayouts = page.payouts;
  renderPayouts(page.payouts);
}

export function renderPayouts(payouts) {
  const list = $('#payouts-list');
  if (!payouts.length) {
    list.replaceChildren(el('p', { class: 'empty' }, t('payouts_empty')));
    return;
  }
  list.replaceChildren(el('ul', { class: 'payout-rows' }, payouts.map((p) => el('li', {
    class: 'payout-row', 'data-payout-id': p.payout_id, 'data-status': p.status,
  },
  el('span', { class: 'payout-amount' }, money(p.amount, p.currency)),
  ` · ${t(`payout_status_${p.status}`)} · ${dateTime(p.arrival_date)}`,
  p.reconciles ? null : el('strong', { class: 'payout-mismatch' }, ` · ${t('payout_mismatch')}`),
  el('button', { type: 'button', class: 'payout-open', 'data-payout-id': p.payout_id }, t('payout_open'))))));
}

export async function onPayoutsClick(event) {
  const button = event.target instanceof Element && event.target.closest('.payout-open');
  if (!button) return;
  await showPayout(button.dataset.payoutId);
}

async function showPayout(payoutId) {
  const detail = await getPayout(state.clinicId, payoutId);
  state.shownPayout = detail;
  renderPayout(detail);
  $('#payout-detail').hidden = false;
  $('#payout-detail-title').focus();
}

export function renderPayout(p) {
  $('#payout-detail-title').textContent = t('payout_detail_title', { amount: money(p.amount, p.currency) });
  $('#payout-detail-summary').textContent = t(p.reconciles ? 'payout_reconciles' : 'payout_does_not_reconcile', {
    lines: money(p.lines_net, p.currency), amount: money(p.amount, p.currency),
  });
  $('#payout-lines tbody').replaceChildren(...p.lines.map((l) => el('tr', { 'data-type': l.type },
    el('td', {}, dateTime(l.created)),
    el('td', {}, t(`payout_line_${l.type}`)),
    el('td', {}, l.invoice_ids.length ? l.invoice_ids.join(', ') : '—'),
    el('td', { class: 'num' }, money(l.gross, p.currency)),
    el('td', { class: 'num' }, money(l.fee, p.currency)),
    el('td', { class: 'num' }, money(l.net, p.currency)))));
}

/** The payout's CSV (the API answers it as an attachment). */
export async function onPayoutCsv() {
  const p = state.shownPayout;
  if (!p) return;
  const url = URL.createObjectURL(await getPayout(state.clinicId, p.payout_id, 'csv'));
  const link = el('a', { href: url, download: `${p.payout_id}.csv`, class: 'visually-hidden' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  say(t('payout_csv_saved'));
}
