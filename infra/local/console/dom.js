// Small helpers: the DOM, numbers and dates, the page's messages and errors.

import { state } from './state.js';

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** The ticked values of checkboxes named `name`. */
export const checkedValues = (name, root = document) => $$(`input[name="${name}"]:checked`, root).map((box) => box.value);

/** The locale for numbers, dates and the assigned action: fr-CA or en-CA. */
export const locale = () => (state.lang === 'fr' ? 'fr-CA' : 'en-CA');

/** Builds an element: el('p', {class: 'x', 'data-status': s}, 'text', child…). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Amounts are integer minor units (cents); every visitpay currency has two decimals. */
export function money(cents, currency) {
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: currency.toUpperCase() }).format(cents / 100);
}

/** "12", "12.5", "12,50" -> 1250 cents, by string arithmetic (no floating point); null if not an amount. */
export function toCents(text) {
  const match = /^\s*(\d{1,6})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** A moment as the clinic reads it: in its time zone (settings), else the browser's. */
export function dateTime(iso) {
  const timeZone = state.settings?.time_zone || state.settingsShown?.time_zone;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(new Date(iso));
}
/** A service date (YYYY-MM-DD) is a calendar day: format it in UTC so no time zone shifts it. */
export function day(isoDate) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(`${isoDate}T00:00:00Z`));
}

/** A random key for Idempotency-Key (the API takes [A-Za-z0-9_.:-]{1,128}; a UUID fits). */
export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function say(text) {
  $('#message').textContent = text;
}
export function clearError() {
  $('#error').textContent = '';
}
/** API errors show their stable `code` (what a client matches on) and the human `message`. */
export function showError(err) {
  $('#error').textContent = err && err.code ? `${err.code}: ${err.message}` : String((err && err.message) || err);
}

/**
 * Wraps a user action: clears the last error, ignores a second click while the
 * first is under way (aria-busy rather than `disabled`, so keyboard focus
 * stays on the button), and shows any error.
 */
export function userAction(fn) {
  return async (event) => {
    const button = event.submitter || (event.target instanceof Element && event.target.closest('button'));
    if (button && button.getAttribute('aria-busy') === 'true') return;
    if (button) button.setAttribute('aria-busy', 'true');
    clearError();
    try {
      await fn(event);
    } catch (err) {
      showError(err);
    } finally {
      if (button) button.removeAttribute('aria-busy');
    }
  };
}
