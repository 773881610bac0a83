// Screen 1: support, the clinic's payment settings.

import { state } from '../state.js';
import { t } from '../words.js';
import { $, el, dateTime, say } from '../dom.js';
import { supportToken } from '../tokens.js';
import { getPaymentSettings, putPaymentSettings, startOnboarding } from '../api.js';
import { renderPaymentLabel } from './visit.js';

const DEFAULT_SETTINGS = {
  enabled: true,
  label: { en: 'Private billing (Stripe)', fr: 'Facturation privée (Stripe)' },
  stripe_account_id: 'acct_1DemoClinic',
  currency: 'cad',
  checkout_ttl_minutes: 60,
  action_ttl_hours: 72,
  line_item_text: 'generic',
  receipt_issuer: {},
  embed_origins: [],
  time_zone: 'America/Toronto',
  receipt_days: 548,
  checkout_domain: 'checkout.stripe.com',
  reminder_hours: [],
  quiet_hours: { from: '20:00', to: '09:00' },
};

export async function loadSettingsForm() {
  const clinic = state.clinicId;
  state.settingsEdited.clear(); // fields typed in from now on are not overwritten by this read
  try {
    fillSettingsForm(await getPaymentSettings(clinic, await supportToken()));
    say(t('settings_loaded', { clinic }));
  } catch (err) {
    if (err.code !== 'settings_not_found') throw err;
    fillSettingsForm(DEFAULT_SETTINGS); // a clinic never set up: start from the defaults
    say(t('settings_none', { clinic }));
  }
}

/** Fills the form from settings, except fields typed in while they were read. */
function fillSettingsForm(s) {
  const issuer = s.receipt_issuer || {};
  const set = (id, value) => {
    if (state.settingsEdited.has(id)) return;
    const field = $(`#${id}`);
    if (field.type === 'checkbox') field.checked = Boolean(value);
    else field.value = value ?? '';
  };
  set('settings-enabled', s.enabled);
  set('settings-label-en', s.label.en);
  set('settings-label-fr', s.label.fr);
  set('settings-account', s.stripe_account_id);
  set('settings-currency', s.currency);
  set('settings-checkout-ttl', s.checkout_ttl_minutes);
  set('settings-action-ttl', s.action_ttl_hours);
  set('settings-line-item-text', s.line_item_text);
  set('settings-receipt-legal-name', issuer.legal_name);
  set('settings-receipt-address', issuer.address);
  set('settings-receipt-phone', issuer.phone);
  set('settings-embed-origins', (s.embed_origins || []).join('\n'));
  set('settings-checkout-domain', s.checkout_domain);
  set('settings-receipt-days', s.receipt_days);
  set('settings-time-zone', s.time_zone);
  set('settings-reminder-hours', (s.reminder_hours || []).join(', '));
  set('settings-quiet-from', (s.quiet_hours || DEFAULT_SETTINGS.quiet_hours).from);
  set('settings-quiet-to', (s.quiet_hours || DEFAULT_SETTINGS.quiet_hours).to);
  state.settingsShown = s;
  renderSettingsUpdated();
  renderStripeAccount();
}

/** What Stripe says of the clinic's account: can it take payments, and what does it still need. */
export function renderStripeAccount() {
  const account = state.settingsShown && state.settingsShown.stripe_account;
  const line = $('#stripe-account-state');
  const due = $('#stripe-account-due');
  let key = 'stripe_account_none';
  if (account) key = account.charges_enabled ? 'stripe_account_ready' : 'stripe_account_restricted';
  line.dataset.state = account ? (account.charges_enabled ? 'ready' : 'restricted') : 'none';
  line.textContent = t(key, { id: account ? account.id : '', reason: account && account.disabled_reason ? account.disabled_reason : '—' });
  due.replaceChildren(...(account ? account.requirements_due : []).map((r) => el('li', {}, r)));
  $('#stripe-onboarding').textContent = t(account ? 'stripe_onboarding_continue' : 'stripe_onboarding_start');
}

/**
 * Support starts (or continues) the clinic's onboarding: a fresh, single-use
 * link to Stripe's hosted pages, opened at once. Stripe sends the person back
 * here with `?onboarding=return` (or `refresh`: the link expired or was used,
 * and a new one is made).
 */
export async function onStartOnboarding() {
  const started = await startOnboarding(state.clinicId);
  window.location.assign(started.url);
}

/** Back from Stripe's onboarding (`?clinic=…&onboarding=return|refresh`). */
export async function onOnboardingReturn(params) {
  const kind = params.get('onboarding');
  if (kind === 'refresh') {
    await onStartOnboarding();
    return true;
  }
  if (kind === 'return') {
    say(t('stripe_onboarding_back'));
    // The address bar keeps no trace of the round trip.
    history.replaceState(null, '', window.location.pathname);
  }
  return false;
}

export function renderSettingsUpdated() {
  const s = state.settingsShown;
  $('#settings-updated').textContent = s && s.updated_at ? t('settings_updated', { at: dateTime(s.updated_at), by: s.updated_by }) : '';
}

/** The PUT body (openapi SettingsInput). It is a full replacement, so every field goes. */
function readSettingsForm() {
  const integer = (selector) => {
    const text = $(selector).value.trim();
    return text === '' ? undefined : Number(text); // empty: the server's default
  };
  const account = $('#settings-account').value.trim();
  return {
    enabled: $('#settings-enabled').checked,
    label: { en: $('#settings-label-en').value, fr: $('#settings-label-fr').value },
    stripe_account_id: account === '' ? null : account,
    currency: $('#settings-currency').value,
    checkout_ttl_minutes: integer('#settings-checkout-ttl'),
    action_ttl_hours: integer('#settings-action-ttl'),
    line_item_text: $('#settings-line-item-text').value,
    receipt_issuer: {
      legal_name: $('#settings-receipt-legal-name').value,
      address: $('#settings-receipt-address').value,
      phone: $('#settings-receipt-phone').value,
    },
    embed_origins: $('#settings-embed-origins').value.split('\n').map((line) => line.trim()).filter(Boolean),
    time_zone: $('#settings-time-zone').value.trim() || undefined,
    receipt_days: integer('#settings-receipt-days'),
    checkout_domain: $('#settings-checkout-domain').value.trim() || undefined,
    // "24, 48" -> [24, 48]; anything else is the server's to refuse (invalid_settings).
    reminder_hours: $('#settings-reminder-hours').value.split(',').map((h) => h.trim()).filter(Boolean).map(Number),
    quiet_hours: { from: $('#settings-quiet-from').value, to: $('#settings-quiet-to').value },
  };
}

export async function onSettingsSubmit(event) {
  event.preventDefault();
  const clinic = state.clinicId;
  const saved = await putPaymentSettings(clinic, readSettingsForm());
  state.settingsEdited.clear();
  fillSettingsForm(saved);
  state.settings = saved; // support sees what staff will: the label changes at once
  renderPaymentLabel();
  say(t('settings_saved', { clinic }));
}
