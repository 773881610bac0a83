// visitpay — reference clinic console (local run only).
//
// An example for an EMR's front-end team of how to call the visitpay API:
// one small function per API call (api.js), a live-event reader (events.js)
// and the screens that follow the help article's eight steps (screens/).
// Plain JavaScript, no build step, no external resources: the page is served
// with `Content-Security-Policy: default-src 'self'`, so there is no inline
// script or style anywhere, and the DOM is built with createElement (never
// innerHTML), because labels and descriptions are clinic data.
//
// ES modules, each imported by a relative path, so they load under any base
// path. This one, the page's only script, wires the page and starts it; its
// words come from the server (words.js) before anything is drawn.

import { state } from './state.js';
import { loadWords, t } from './words.js';
import { $, $$, clearError, showError, userAction } from './dom.js';
import { setLive } from './events.js';
import {
  onOpenPrivateBilling, loadInvoices, renderInvoices, onMakePayment, renderSelectionTotal,
} from './screens/chart.js';
import { renderAllTiles } from './screens/tiles.js';
import {
  onOpenVisit, onOpenActionsNotes, onOpenPatientActions, onAssignActions, closeAssignForm,
  renderPaymentLabel, onChoosePaymentLabel, renderAssignInvoices, onAssignSubmit,
} from './screens/visit.js';
import {
  loadSettingsForm, renderSettingsUpdated, onSettingsSubmit, renderStripeAccount, onStartOnboarding, onOnboardingReturn,
} from './screens/settings.js';
import { loadPayouts, renderPayouts, renderPayout, onPayoutsClick, onPayoutCsv } from './screens/payouts.js';
import { onTileButton, onRefundSubmit } from './screens/tile-buttons.js';
import { connectClinic, onContextSubmit } from './screens/context.js';
import { startOutbox, stopOutbox, loadOutbox, renderOutbox, onOutboxClick } from './screens/outbox.js';

// --- Language -------------------------------------------------------------

function applyLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  document.title = t('doc_title');
  for (const node of $$('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of $$('[data-i18n-aria-label]')) node.setAttribute('aria-label', t(node.dataset.i18nAriaLabel));
  $('#lang-en').setAttribute('aria-pressed', String(lang === 'en'));
  $('#lang-fr').setAttribute('aria-pressed', String(lang === 'fr'));
  setLive($('#live-status').dataset.state);
  sessionStorage.setItem('visitpay.console.lang', lang);
  // Dynamic parts are rebuilt from what is already loaded.
  if (state.tokenNote) $('#ctx-tokens').textContent = t(state.tokenNote.key, state.tokenNote.vars);
  renderSettingsUpdated();
  renderPaymentLabel();
  if (state.lastInvoices) renderInvoices(state.lastInvoices);
  if (state.lastSelection) renderSelectionTotal(state.lastSelection);
  if (state.lastAssignable) renderAssignInvoices(state.lastAssignable);
  if (state.lastOutbox) renderOutbox(state.lastOutbox);
  renderStripeAccount();
  if (state.lastPayouts) renderPayouts(state.lastPayouts);
  if (state.shownPayout) renderPayout(state.shownPayout);
  renderAllTiles();
}

// --- Navigation -----------------------------------------------------------

const SCREENS = ['support', 'chart', 'visit', 'outbox', 'payouts'];

function showScreen(name, { focus = true } = {}) {
  for (const screen of SCREENS) {
    $(`#screen-${screen}`).hidden = screen !== name;
    const button = $(`#nav-${screen}`);
    if (screen === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  // Moving focus to the screen's heading tells screen-reader users the view changed.
  if (focus) $(`#screen-${name} h2`).focus();
  if (name === 'support') loadSettingsForm().catch(showError);
  if (name === 'outbox') startOutbox();
  else stopOutbox();
  if (name === 'payouts') loadPayouts().catch(showError);
}

// --- Start ----------------------------------------------------------------

function bind() {
  $('#lang-en').addEventListener('click', () => applyLanguage('en'));
  $('#lang-fr').addEventListener('click', () => applyLanguage('fr'));
  for (const name of SCREENS) {
    $(`#nav-${name}`).addEventListener('click', () => { clearError(); showScreen(name); });
  }
  $('#context-form').addEventListener('submit', userAction(onContextSubmit));
  $('#settings-form').addEventListener('submit', userAction(onSettingsSubmit));
  $('#open-private-billing').addEventListener('click', userAction(onOpenPrivateBilling));
  $('#invoice-filter').addEventListener('change', userAction(loadInvoices));
  $('#make-payment').addEventListener('click', userAction(onMakePayment));
  $('#open-visit').addEventListener('click', userAction(onOpenVisit));
  $('#open-actions-notes').addEventListener('click', userAction(onOpenActionsNotes));
  $('#open-patient-actions').addEventListener('click', userAction(onOpenPatientActions));
  $('#assign-actions').addEventListener('click', userAction(onAssignActions));
  $('#choose-payment-label').addEventListener('click', userAction(onChoosePaymentLabel));
  $('#assign-form').addEventListener('submit', userAction(onAssignSubmit));
  $('#assign-close').addEventListener('click', closeAssignForm);
  const tileButton = userAction(onTileButton);
  $('#actions').addEventListener('click', (event) => {
    if (event.target instanceof Element && event.target.closest('.action-tile button')) tileButton(event);
  });
  // A field typed in is the user's: a settings read still under way leaves it alone.
  $('#settings-form').addEventListener('input', (event) => state.settingsEdited.add(event.target.id));
  $('#actions').addEventListener('submit', userAction(onRefundSubmit));
  $('#outbox-refresh').addEventListener('click', userAction(loadOutbox));
  $('#outbox').addEventListener('click', onOutboxClick);
  $('#stripe-onboarding').addEventListener('click', userAction(onStartOnboarding));
  $('#payouts-refresh').addEventListener('click', userAction(loadPayouts));
  $('#payouts-list').addEventListener('click', userAction(onPayoutsClick));
  $('#payout-csv').addEventListener('click', userAction(onPayoutCsv));
}

/**
 * Reads the words first: nothing is drawn or wired until they are here, and
 * without them the page says why (in #error, as any error) and stays as it is.
 */
async function start() {
  try {
    await loadWords();
  } catch (err) {
    showError(err);
    return;
  }
  bind();
  const stored = sessionStorage.getItem('visitpay.console.lang');
  applyLanguage(stored === 'fr' ? 'fr' : 'en');
  state.clinicId = $('#ctx-clinic').value.trim();
  state.patientId = $('#ctx-patient').value.trim();
  state.visitId = $('#ctx-visit').value.trim();
  // Back from Stripe's hosted onboarding: the support screen, or a new link.
  const params = new URLSearchParams(window.location.search);
  if (params.get('clinic')) {
    $('#ctx-clinic').value = params.get('clinic');
    state.clinicId = params.get('clinic');
  }
  connectClinic();
  if (params.has('onboarding')) {
    try {
      if (await onOnboardingReturn(params)) return;
    } catch (err) {
      showError(err);
    }
    showScreen('support', { focus: false });
    return;
  }
  showScreen('chart', { focus: false });
}

start();
