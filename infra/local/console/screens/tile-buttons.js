// Screen 3: the tiles' buttons and refund form.

import { state } from '../state.js';
import { BASE } from '../http.js';
import { t } from '../words.js';
import { $, $$, el, money, toCents, say, showError } from '../dom.js';
import { cancelAction, refundAction, getReceipt, sendLink } from '../api.js';
import { scheduleInvoiceRefresh } from './chart.js';
import { showAction, renderTile, tileOf } from './tiles.js';

// Tile buttons: one listener on the container (bound in main.js), so re-rendered tiles need no rebinding.

export async function onTileButton(event) {
  const button = event.target.closest('button');
  const tile = button.closest('.action-tile');
  const id = tile.dataset.actionId;
  if (button.classList.contains('action-cancel')) await onCancel(id);
  else if (button.classList.contains('send-link')) await onSendLink(id);
  else if (button.classList.contains('copy-link')) await copyLink($('.patient-link', tile));
  else if (button.classList.contains('receipt-link')) await openReceipt(id);
  else if (button.classList.contains('receipt-pdf')) await downloadReceiptPdf(id);
}

/** The link again, to the contacts the action was given (the API answers 202: it goes within seconds). */
async function onSendLink(actionId) {
  showAction(await sendLink(actionId, {}));
  say(t('link_sent_again'));
}

async function onCancel(actionId) {
  showAction(await cancelAction(actionId));
  say(t('cancelled'));
  scheduleInvoiceRefresh();
}

export async function onRefundSubmit(event) {
  event.preventDefault();
  const tile = event.target.closest('.action-tile');
  const id = tile.dataset.actionId;
  const text = $('.refund-amount', tile).value;
  // Staff type currency units; the API takes integer cents. Empty: all that remains.
  const cents = text.trim() === '' ? null : toCents(text);
  if (cents === 0 || (text.trim() !== '' && cents === null)) {
    showError({ message: t('refund_bad_amount') });
    return;
  }
  const before = state.actions.get(id);
  const action = await refundAction(id, cents);
  showAction(action);
  clearRefundAmount(id);
  const refund = newestRefund(before, action);
  say(t('refund_sent', {
    amount: money(refund ? refund.amount : (cents ?? action.refunded_amount), action.currency),
    status: refund ? refund.status : '—',
  }));
  scheduleInvoiceRefresh(); // a full refund makes the invoices owed again
}

/** Empties the amount typed; after a full refund the tile has no refund form left. */
function clearRefundAmount(actionId) {
  const tile = tileOf(actionId);
  const field = tile && $('.refund-amount', tile);
  if (field) field.value = '';
}

/** The refund this answer added: one not listed before, else the last one. */
function newestRefund(before, after) {
  const known = new Set(((before && before.refunds) || []).map((r) => r.refund_id));
  const refunds = after.refunds || [];
  return refunds.find((r) => !known.has(r.refund_id)) || refunds[refunds.length - 1];
}

async function copyLink(input) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (_) {
    // No clipboard permission (or an older browser): select and copy.
    input.select();
    document.execCommand('copy');
  }
  say(t('link_copied'));
}

/**
 * The receipt needs the staff token, so a plain link cannot fetch it: fetch
 * it, then open it from a blob URL (receiptPage makes it work there).
 */
async function openReceipt(actionId) {
  const html = await (await getReceipt(actionId, 'html')).text();
  const blob = new Blob([receiptPage(html)], { type: 'text/html' });
  rememberReceiptUrl(actionId, URL.createObjectURL(blob));
  const opened = window.open(state.receiptUrls.get(actionId), '_blank');
  if (opened) opened.opener = null;
  if (state.actions.has(actionId)) renderTile(state.actions.get(actionId)); // shows "Open the receipt"
  say(opened ? t('receipt_opened') : t('receipt_blocked'));
}

/**
 * The receipt, rewritten through the DOM (not with regexes over HTML). A blob
 * page keeps this console's CSP, which blocks the receipt's inline <style>,
 * and a relative <link> stylesheet cannot resolve from a blob: both go, this
 * console's stylesheet comes instead. Its relative PDF link cannot work from
 * a blob and needs the token too: removed, the tile offers the PDF itself.
 */
function receiptPage(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  for (const node of $$('style, link[rel~="stylesheet" i]', doc)) node.remove();
  for (const link of $$('a[href]', doc)) if (isRelativePdfLink(link)) link.remove();
  doc.head.append(el('link', { rel: 'stylesheet', href: new URL(`${BASE}/console/console.css`, location.href).href }));
  doc.body.classList.add('receipt-page');
  return `<!doctype html>\n${doc.documentElement.outerHTML}`;
}

/** A link such as `receipt.pdf?lang=fr` (or an old `?format=pdf`): relative (no scheme, no host) and to the PDF. */
function isRelativePdfLink(link) {
  const href = link.getAttribute('href');
  if (/^([a-z][a-z0-9+.-]*:|\/\/)/i.test(href)) return false;
  const url = new URL(href, 'https://receipt.invalid/r/');
  return url.pathname.endsWith('.pdf') || url.searchParams.get('format') === 'pdf';
}

function rememberReceiptUrl(actionId, url) {
  const previous = state.receiptUrls.get(actionId);
  if (previous) URL.revokeObjectURL(previous);
  state.receiptUrls.set(actionId, url);
}

/** The PDF as a download (the API answers it as an attachment). */
async function downloadReceiptPdf(actionId) {
  const url = URL.createObjectURL(await getReceipt(actionId, 'pdf'));
  const link = el('a', { href: url, download: `receipt-${actionId}.pdf`, class: 'visually-hidden' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
