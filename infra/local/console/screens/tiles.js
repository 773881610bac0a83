// Screen 3: the actions' tiles.

import { ACTION_STATUSES_LIVE, CANCELLABLE, REFUNDABLE, HAS_RECEIPT, state } from '../state.js';
import { t, statusWords } from '../words.js';
import { $, $$, el, money, dateTime, showError } from '../dom.js';
import { listVisitActions, getAction } from '../api.js';

/**
 * Reads the visit's actions. A tile that changed from an answer while the
 * list was read (an assign, a cancel, a refund) is newer than the list: kept;
 * so is a tile showing a higher version than the list's item.
 */
export async function refreshVisitActions() {
  const visit = state.visitId;
  const startedAt = state.shownSeq;
  const actions = await listVisitActions(visit);
  if (visit !== state.visitId) return;
  const newer = (id) => (state.shownAt.get(id) ?? -1) > startedAt;
  const listed = new Map(actions.map((action) => [action.action_id, action]));
  for (const id of [...state.actions.keys()]) if (!listed.has(id) && !newer(id)) state.actions.delete(id);
  for (const [id, action] of listed) {
    noteVersion(id, action.version);
    if (!newer(id) && !olderThanShown(action)) state.actions.set(id, action);
  }
  renderAllTiles();
}

/** Re-reads one shown action (showAction drops an answer older than the tile). */
export async function refreshAction(actionId) {
  try {
    const action = await getAction(actionId);
    if (state.actions.has(actionId)) showAction(action); // not if the visit changed meanwhile
  } catch (err) {
    showError(err);
  }
}

/** The highest version known for an action, from events and answers alike (0: none yet). */
export const knownVersion = (actionId) => state.versions.get(actionId) ?? 0;

export function noteVersion(actionId, version) {
  if (Number.isInteger(version) && version > knownVersion(actionId)) state.versions.set(actionId, version);
}

/** An answer with a lower version than its tile shows would roll the tile back. */
function olderThanShown(action) {
  const shown = state.actions.get(action.action_id);
  return Boolean(shown) && action.version < shown.version;
}

/**
 * Shows an action from an answer (assign, cancel, refund, read). Answers can
 * arrive in any order (a read started before a write may answer after it):
 * the version, which grows with every write, decides which is newer.
 */
export function showAction(action) {
  const id = action.action_id;
  noteVersion(id, action.version);
  if (olderThanShown(action)) return;
  state.shownAt.set(id, ++state.shownSeq);
  state.actions.set(id, action);
  renderTile(action);
}

/** Redraws every tile (newest first), each through renderTile so typing and focus survive. */
export function renderAllTiles() {
  const container = $('#actions');
  for (const tile of $$('.action-tile', container)) {
    if (!state.actions.has(tile.dataset.actionId)) tile.remove();
  }
  const oldestFirst = [...state.actions.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  for (const action of oldestFirst) renderTile(action);
  $('.empty', container)?.remove();
  if (!state.actions.size) container.append(el('p', { class: 'empty' }, t('no_actions')));
}

/** A tile is made of parts; an update redraws only the parts that changed. */
const TILE_PARTS = [
  ['facts', facts],
  ['flags', flags],
  ['link', patientLink],
  ['buttons', tileButtons],
  ['refund', (a) => (REFUNDABLE.includes(a.status) ? refundForm(a) : null)],
  ['history', historyList],
];

/**
 * Shows an action in its tile: a new tile, or an update of the existing one
 * in place. Parts whose content did not change keep their elements, so the
 * refund amount typed so far, the keyboard focus and a click under way survive
 * live updates.
 */
export function renderTile(action) {
  const container = $('#actions');
  const old = tileOf(action.action_id);
  if (!old) {
    $('.empty', container)?.remove();
    container.prepend(buildTile(action));
    return;
  }
  old.dataset.status = action.status;
  $('.action-label', old).textContent = action.label;
  $('.action-meta', old).textContent = metaText(action);
  for (const [name, build] of TILE_PARTS) {
    const part = $(`:scope > [data-part="${name}"]`, old);
    const fresh = tilePart(name, build(action));
    if (part.innerHTML === fresh.innerHTML) continue;
    const focused = part.contains(document.activeElement) ? document.activeElement.classList[0] : null;
    part.replaceWith(fresh);
    if (focused) ($(`.${focused}`, fresh) || $('.action-label', old)).focus();
  }
}

function buildTile(a) {
  const id = a.action_id;
  const titleId = `tile-title-${id}`;
  const metaId = `tile-meta-${id}`;
  // Named by its label and its id/date: several tiles may share a label.
  return el('section', { class: 'action-tile', 'data-action-id': id, 'data-status': a.status, 'aria-labelledby': `${titleId} ${metaId}` },
    el('h5', { id: titleId, class: 'action-label', tabindex: '-1' }, a.label),
    el('p', { id: metaId, class: 'action-meta' }, metaText(a)),
    TILE_PARTS.map(([name, build]) => tilePart(name, build(a))));
}

/** An action's tile, if shown (found by dataset: an id never goes into a selector). */
export const tileOf = (actionId) => $$('.action-tile', $('#actions')).find((tile) => tile.dataset.actionId === actionId);

const metaText = (a) => t('action_meta', { id: a.action_id, at: dateTime(a.created_at) });
const tilePart = (name, content) => el('div', { class: 'tile-part', 'data-part': name }, content);

function facts(a) {
  return el('dl', { class: 'action-facts' },
    fact(t('amount'), el('span', { class: 'action-amount' }, money(a.amount, a.currency))),
    fact(t('status'), el('span', { class: 'action-status', 'data-status': a.status }, statusWords(a.status))),
    fact(t('refunded'), el('span', { class: 'action-refunded' }, money(a.refunded_amount ?? 0, a.currency),
      a.refund_pending_amount ? ` (${t('refund_pending', { amount: money(a.refund_pending_amount, a.currency) })})` : '')),
    fact(t('invoices'), (a.invoice_ids || []).join(', ')),
    a.paid_at ? fact(t('paid_at'), dateTime(a.paid_at)) : null,
    ACTION_STATUSES_LIVE.includes(a.status) && a.expires_at ? fact(t('expires'), dateTime(a.expires_at)) : null);
}

function fact(term, ...value) {
  return el('div', { class: 'fact' }, el('dt', {}, term), el('dd', {}, ...value));
}

/** Conditions staff must act on, in words (never by colour alone). */
function flags(a) {
  const items = [
    a.disputed ? t('flag_disputed') : null,
    a.refund_needed ? t('flag_refund_needed') : null,
    a.account_disconnected ? t('flag_disconnected') : null,
  ].filter(Boolean);
  return items.length ? el('ul', { class: 'action-flags' }, items.map((text) => el('li', {}, text))) : null;
}

function patientLink(a) {
  const url = sessionStorage.getItem(linkKey(a.action_id)) || '';
  const inputId = `patient-link-${a.action_id}`;
  const hintId = `patient-link-hint-${a.action_id}`;
  return el('div', { class: 'field patient-link-field' },
    el('label', { for: inputId }, t('patient_link')),
    el('div', { class: 'link-row' },
      el('input', { id: inputId, class: 'patient-link', type: 'text', readonly: true, value: url, 'aria-describedby': url ? null : hintId }),
      el('button', { type: 'button', class: 'copy-link', disabled: !url }, t('copy_link'))),
    url ? openLink(url) : el('p', { id: hintId, class: 'hint' }, t('patient_link_missing')));
}

/**
 * "Open as the patient", for an http(s) link only: never a javascript: or
 * data: URL as a link. The read-only field above shows the text in any case.
 */
function openLink(url) {
  if (!isWebUrl(url)) return null;
  return el('a', { class: 'open-patient-link', href: url, target: '_blank', rel: 'noopener noreferrer' }, t('open_link'));
}

function isWebUrl(url) {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch (_) {
    return false; // not an absolute URL
  }
}

function tileButtons(a) {
  const receiptUrl = state.receiptUrls.get(a.action_id);
  const buttons = [
    CANCELLABLE.includes(a.status) ? el('button', { type: 'button', class: 'send-link' }, t('send_link')) : null,
    CANCELLABLE.includes(a.status) ? el('button', { type: 'button', class: 'action-cancel' }, t('cancel')) : null,
    HAS_RECEIPT.includes(a.status) ? el('button', { type: 'button', class: 'receipt-link' }, t('receipt')) : null,
    HAS_RECEIPT.includes(a.status) ? el('button', { type: 'button', class: 'receipt-pdf' }, t('receipt_pdf')) : null,
    HAS_RECEIPT.includes(a.status) && receiptUrl
      ? el('a', { class: 'receipt-open', href: receiptUrl, target: '_blank', rel: 'noopener' }, t('receipt_open'))
      : null,
  ].filter(Boolean);
  return buttons.length ? el('div', { class: 'tile-buttons' }, buttons) : null;
}

function refundForm(a) {
  const inputId = `refund-amount-${a.action_id}`;
  const hintId = `refund-hint-${a.action_id}`;
  const remaining = a.amount - (a.refunded_amount ?? 0);
  return el('form', { class: 'refund-form field' },
    el('label', { for: inputId }, t('refund_amount', { currency: a.currency.toUpperCase() })),
    el('div', { class: 'link-row' },
      el('input', { id: inputId, class: 'refund-amount', type: 'text', inputmode: 'decimal', autocomplete: 'off', 'aria-describedby': hintId }),
      el('button', { type: 'submit', class: 'action-refund' }, t('refund'))),
    el('p', { id: hintId, class: 'hint' }, t('refund_hint', { remaining: money(remaining, a.currency) })));
}

function historyList(a) {
  const entries = (a.history || []).map((entry) => el('li', {},
    el('time', { datetime: entry.at }, dateTime(entry.at)),
    ' — ',
    entry.from ? `${statusWords(entry.from)} → ${statusWords(entry.to)}` : statusWords(entry.to),
    ` — ${actor(entry.actor)}`,
    entry.reason ? ` — ${entry.reason}` : '',
    Number.isInteger(entry.amount) ? ` — ${money(entry.amount, a.currency)}` : ''));
  return el('div', { class: 'history' },
    el('h6', {}, t('history')),
    el('ol', { class: 'action-history' }, entries),
    a.history_omitted ? el('p', { class: 'hint' }, t('history_omitted', { count: a.history_omitted })) : null);
}

/** `staff:<sub>`, `patient`, `stripe:<event id>` or `reconcile`, in words. */
function actor(text) {
  if (text === 'patient') return t('actor_patient');
  if (text === 'reconcile') return t('actor_reconcile');
  if (text.startsWith('staff:')) return t('actor_staff', { who: text.slice(6) });
  if (text.startsWith('stripe:')) return t('actor_stripe', { who: text.slice(7) });
  return text;
}

// The patients' links, kept for the tab's life: onAssignSubmit (visit.js) keeps each, patientLink shows it.
const LINK_PREFIX = 'visitpay.patient_url.';
export const linkKey = (actionId) => `${LINK_PREFIX}${actionId}`;

/** Drops every kept patient link (on a change of clinic). */
export function forgetPatientLinks() {
  const keys = Array.from({ length: sessionStorage.length }, (_, i) => sessionStorage.key(i));
  for (const key of keys) if (key && key.startsWith(LINK_PREFIX)) sessionStorage.removeItem(key);
}
