// visitpay — reference clinic console (local run only).
//
// An example for an EMR's front-end team of how to call the visitpay API:
// one small function per API call (section 4), a live-event reader (section 5)
// and the screens that follow the help article's eight steps (section 6).
// Plain JavaScript, no build step, no external resources: the page is served
// with `Content-Security-Policy: default-src 'self'`, so there is no inline
// script or style anywhere, and the DOM is built with createElement (never
// innerHTML), because labels and descriptions are clinic data.
'use strict';

// ---------------------------------------------------------------------------
// 1. Words: one dictionary per language. Every visible text comes from here.
// ---------------------------------------------------------------------------

const WORDS = {
  en: {
    doc_title: 'visitpay — reference clinic console (local)',
    skip: 'Skip to the content',
    title: 'Reference clinic console',
    tagline: 'Local run only: an example of the visitpay API for EMR front-end teams.',
    language: 'Language',
    noscript: 'This console needs JavaScript.',
    nav_label: 'Screens',
    nav_support: 'Support: settings',
    nav_chart: 'Patient chart',
    nav_visit: 'Virtual visit',
    live_connected: 'Live updates: connected',
    live_reconnecting: 'Live updates: reconnecting…',
    live_stopped: 'Live updates: stopped (see the error)',

    context_title: 'Local run',
    ctx_clinic: 'Clinic id',
    ctx_patient: 'Patient id',
    ctx_visit: 'Visit id',
    ctx_apply: 'Apply and get tokens',
    ctx_getting: 'Getting a staff and a support token for {clinic}…',
    ctx_ready: 'Staff and support tokens ready for clinic {clinic}.',
    ctx_failed: 'No tokens for clinic {clinic}: is visitpay-local running?',

    support_title: "Support: the clinic's payment settings",
    support_hint: 'Uses the support token. Saving replaces every setting, so the form sends all the fields it read.',
    settings_payments: 'Private payments',
    settings_enabled: 'Private payments are on for this clinic',
    settings_account: 'Stripe account id',
    settings_account_hint: 'Needed to switch payments on. Leave empty only while they are off.',
    settings_currency: 'Currency',
    settings_label_legend: 'Private payment label (staff and patient see it)',
    settings_label_en: 'Label in English',
    settings_label_fr: 'Label in French',
    settings_lifetimes: "Lifetimes and Stripe's page",
    settings_checkout_ttl: 'Checkout page lifetime (minutes, 30 to 1440)',
    settings_action_ttl: 'Action and patient link lifetime (hours, 1 to 720)',
    settings_line_item_text: "What Stripe's line item says",
    line_generic: 'Generic: “Clinic services — invoice 1042”',
    line_description: "The invoice's description",
    settings_line_item_hint: 'Generic keeps health information away from Stripe.',
    settings_receipt: "Receipt issuer (for the patient's insurer)",
    settings_receipt_hint: 'Each optional; the receipt lists what is missing.',
    settings_receipt_legal_name: "Clinic's legal name",
    settings_receipt_address: 'Address',
    settings_receipt_phone: 'Phone',
    settings_embed: 'EMR frames',
    settings_embed_origins: "Origins that may frame the patient's page (one per line)",
    settings_embed_hint: 'At most 10, each https://host[:port]. None by default.',
    settings_checkout_domain: "Stripe Checkout's host",
    settings_checkout_domain_hint: "checkout.stripe.com, or the clinic's Checkout custom domain.",
    settings_receipt_days: "The receipt stays on the patient's link (days, 30 to 3650)",
    settings_time_zone: "The clinic's time zone (dates are days there)",
    settings_time_zone_hint: 'An IANA name, like America/Vancouver.',
    settings_save: 'Save the settings',
    settings_loaded: 'Settings of {clinic} loaded.',
    settings_none: '{clinic} has no settings yet: the form shows the defaults.',
    settings_saved: 'Settings of {clinic} saved.',
    settings_updated: 'Last changed {at} by {by}.',

    chart_title: 'Patient chart',
    patient: 'Patient',
    visit: 'Visit',
    start_open: 'Start/Open',
    private_billing: 'Private billing',
    filter_label: 'Show',
    filter_all: 'All invoices',
    group_unprocessed: 'Unprocessed invoices',
    group_selected: 'Ready to collect',
    group_pending: 'Pending payment',
    group_paid: 'Paid (completed)',
    no_invoices: 'No invoices to show.',
    invoice: 'Invoice {id}',
    in_action: 'in action {id}',
    paid_on: 'paid {at}',
    make_payment: 'Make a payment',
    tick_invoices: 'Tick at least one invoice first.',
    selection_total: 'Total to collect: {total} (invoices {ids}).',
    ready_to_collect: 'You are now ready to collect a payment.',

    visit_title: 'Virtual visit',
    open_visit: 'Open the virtual visit window',
    visit_window: 'Virtual visit window',
    video_placeholder: 'The video call with the patient is here (not part of this console).',
    actions_notes: 'Actions and Notes+',
    patient_actions: 'Patient-assigned actions',
    assign_actions: '+ Assign actions',
    assign_title: 'Assign actions',
    assign_step_label: '1. Choose the action to assign',
    assign_step_invoices: '2. Tick the private invoices to collect',
    assign_submit: 'Assign',
    assign_close: 'Close',
    label_fallback: 'Private payment',
    payments_off: 'Private payments are off for this clinic: support can switch them on.',
    no_settings: 'This clinic has no payment settings yet: ask support.',
    no_selected: 'No invoice is ready to collect: tick some in Private billing and click Make a payment.',
    assigned: 'Action assigned ({amount}). The patient can pay from their link.',
    replayed: 'This repeats an earlier assignment: the patient link was only in its first answer.',
    no_actions: 'No action assigned in this visit yet.',

    action_meta: 'Action {id} · assigned {at}',
    amount: 'Amount',
    status: 'Status',
    refunded: 'Refunded',
    refund_pending: '{amount} of it still pending at Stripe',
    invoices: 'Invoices',
    expires: 'Link expires',
    paid_at: 'Paid',
    flag_disputed: 'The patient disputes this payment: answer the dispute in Stripe (no refund meanwhile).',
    flag_refund_needed: 'Money Stripe holds must go back to the patient (refund needed).',
    flag_disconnected: "The clinic's Stripe account is disconnected.",
    patient_link: 'Patient link',
    patient_link_missing: 'The link is only in the answer that assigned the action (not kept in this browser tab).',
    copy_link: 'Copy the link',
    open_link: 'Open as the patient',
    link_copied: 'Patient link copied.',
    cancel: 'Cancel the action',
    cancelled: 'Action cancelled: its invoices are ready to collect again.',
    refund_amount: 'Amount to refund ({currency})',
    refund_hint: 'Leave empty to refund all that remains ({remaining}).',
    refund: 'Refund',
    refund_bad_amount: 'Enter an amount such as 10.00.',
    refund_sent: 'Refund of {amount} sent (Stripe: {status}).',
    receipt: 'Receipt',
    receipt_pdf: 'Receipt (PDF)',
    receipt_open: 'Open the receipt',
    receipt_opened: 'Receipt opened in a new tab.',
    receipt_blocked: 'The receipt is ready: use “Open the receipt”.',
    history: 'History',
    history_omitted: '{count} routine entries (checkout pages opened and expired) are not listed.',
    live_changed: '{label}: {status}.',
    actor_staff: 'staff ({who})',
    actor_patient: 'the patient',
    actor_stripe: 'Stripe ({who})',
    actor_reconcile: 'reconcile (asked Stripe)',

    status_words: {
      assigned: 'Assigned: waiting for the patient',
      checkout_open: 'The patient is on the payment page',
      processing: 'Payment processing',
      paid: 'Paid',
      partially_refunded: 'Partially refunded',
      refunded: 'Refunded',
      failed: 'Payment failed',
      cancelled: 'Cancelled',
      expired: 'Expired',
    },
    invoice_status_words: {
      unprocessed: 'Unprocessed',
      selected: 'Ready to collect',
      pending: 'Pending payment',
      paid: 'Paid (completed)',
    },
  },

  fr: {
    doc_title: 'visitpay — console de clinique de référence (locale)',
    skip: 'Aller au contenu',
    title: 'Console de clinique de référence',
    tagline: "Exécution locale seulement : un exemple de l'API visitpay pour les équipes front-end des DME.",
    language: 'Langue',
    noscript: 'Cette console a besoin de JavaScript.',
    nav_label: 'Écrans',
    nav_support: 'Soutien : paramètres',
    nav_chart: 'Dossier du patient',
    nav_visit: 'Visite virtuelle',
    live_connected: 'Mises à jour en direct : connecté',
    live_reconnecting: 'Mises à jour en direct : reconnexion…',
    live_stopped: "Mises à jour en direct : arrêtées (voir l'erreur)",

    context_title: 'Exécution locale',
    ctx_clinic: 'Identifiant de la clinique',
    ctx_patient: 'Identifiant du patient',
    ctx_visit: 'Identifiant de la visite',
    ctx_apply: 'Appliquer et obtenir les jetons',
    ctx_getting: "Obtention d'un jeton du personnel et d'un jeton du soutien pour {clinic}…",
    ctx_ready: 'Jetons du personnel et du soutien prêts pour la clinique {clinic}.',
    ctx_failed: "Aucun jeton pour la clinique {clinic} : visitpay-local est-il lancé?",

    support_title: 'Soutien : paramètres de paiement de la clinique',
    support_hint: "Utilise le jeton du soutien. L'enregistrement remplace tous les paramètres : le formulaire envoie donc tous les champs lus.",
    settings_payments: 'Paiements privés',
    settings_enabled: 'Les paiements privés sont activés pour cette clinique',
    settings_account: 'Identifiant du compte Stripe',
    settings_account_hint: "Nécessaire pour activer les paiements. Laissez vide seulement s'ils sont désactivés.",
    settings_currency: 'Devise',
    settings_label_legend: 'Libellé de paiement privé (vu par le personnel et le patient)',
    settings_label_en: 'Libellé en anglais',
    settings_label_fr: 'Libellé en français',
    settings_lifetimes: 'Durées et page de Stripe',
    settings_checkout_ttl: 'Durée de la page de paiement (minutes, de 30 à 1440)',
    settings_action_ttl: "Durée de l'action et du lien du patient (heures, de 1 à 720)",
    settings_line_item_text: 'Ce que dit la ligne de Stripe',
    line_generic: 'Générique : « Services de la clinique — facture 1042 »',
    line_description: 'La description de la facture',
    settings_line_item_hint: "Générique garde les renseignements de santé loin de Stripe.",
    settings_receipt: "Émetteur du reçu (pour l'assureur du patient)",
    settings_receipt_hint: 'Chacun est facultatif; le reçu indique ce qui manque.',
    settings_receipt_legal_name: 'Nom légal de la clinique',
    settings_receipt_address: 'Adresse',
    settings_receipt_phone: 'Téléphone',
    settings_embed: 'Cadres du DME',
    settings_embed_origins: 'Origines qui peuvent afficher la page du patient dans un cadre (une par ligne)',
    settings_embed_hint: 'Au plus 10, chacune https://hôte[:port]. Aucune par défaut.',
    settings_checkout_domain: 'Hôte de Stripe Checkout',
    settings_checkout_domain_hint: 'checkout.stripe.com, ou le domaine personnalisé Checkout de la clinique.',
    settings_receipt_days: 'Le reçu reste accessible par le lien du patient (jours, de 30 à 3650)',
    settings_time_zone: 'Fuseau horaire de la clinique (les dates sont des jours de ce fuseau)',
    settings_time_zone_hint: 'Un nom IANA, par exemple America/Vancouver.',
    settings_save: 'Enregistrer les paramètres',
    settings_loaded: 'Paramètres de {clinic} chargés.',
    settings_none: "{clinic} n'a pas encore de paramètres : le formulaire montre les valeurs par défaut.",
    settings_saved: 'Paramètres de {clinic} enregistrés.',
    settings_updated: 'Modifiés le {at} par {by}.',

    chart_title: 'Dossier du patient',
    patient: 'Patient',
    visit: 'Visite',
    start_open: 'Démarrer/ouvrir',
    private_billing: 'Facturation privée',
    filter_label: 'Afficher',
    filter_all: 'Toutes les factures',
    group_unprocessed: 'Factures non traitées',
    group_selected: 'Prêtes à percevoir',
    group_pending: 'Paiement en attente',
    group_paid: 'Payées (complétées)',
    no_invoices: 'Aucune facture à afficher.',
    invoice: 'Facture {id}',
    in_action: "dans l'action {id}",
    paid_on: 'payée le {at}',
    make_payment: 'Effectuer un paiement',
    tick_invoices: "Cochez d'abord au moins une facture.",
    selection_total: 'Total à percevoir : {total} (factures {ids}).',
    ready_to_collect: 'Vous êtes maintenant prêt à percevoir un paiement.',

    visit_title: 'Visite virtuelle',
    open_visit: 'Ouvrir la fenêtre de la visite virtuelle',
    visit_window: 'Fenêtre de la visite virtuelle',
    video_placeholder: "L'appel vidéo avec le patient est ici (hors de cette console).",
    actions_notes: 'Actions et Notes+',
    patient_actions: 'Actions attribuées au patient',
    assign_actions: '+ Attribuer des actions',
    assign_title: 'Attribuer des actions',
    assign_step_label: "1. Choisissez l'action à attribuer",
    assign_step_invoices: '2. Cochez les factures privées dont vous souhaitez percevoir le paiement',
    assign_submit: 'Attribuer',
    assign_close: 'Fermer',
    label_fallback: 'Paiement privé',
    payments_off: 'Les paiements privés sont désactivés pour cette clinique : le soutien peut les activer.',
    no_settings: "Cette clinique n'a pas encore de paramètres de paiement : demandez au soutien.",
    no_selected: 'Aucune facture prête à percevoir : cochez-en dans Facturation privée et cliquez sur Effectuer un paiement.',
    assigned: 'Action attribuée ({amount}). Le patient peut payer à partir de son lien.',
    replayed: 'Ceci répète une attribution précédente : le lien du patient ne figurait que dans sa première réponse.',
    no_actions: 'Aucune action attribuée dans cette visite pour le moment.',

    action_meta: 'Action {id} · attribuée le {at}',
    amount: 'Montant',
    status: 'État',
    refunded: 'Remboursé',
    refund_pending: '{amount} encore en attente chez Stripe',
    invoices: 'Factures',
    expires: 'Le lien expire',
    paid_at: 'Payée',
    flag_disputed: 'Le patient conteste ce paiement : répondez à la contestation dans Stripe (aucun remboursement entre-temps).',
    flag_refund_needed: "De l'argent détenu par Stripe doit retourner au patient (remboursement nécessaire).",
    flag_disconnected: 'Le compte Stripe de la clinique est déconnecté.',
    patient_link: 'Lien du patient',
    patient_link_missing: "Le lien ne figure que dans la réponse qui a attribué l'action (non conservé dans cet onglet).",
    copy_link: 'Copier le lien',
    open_link: 'Ouvrir comme le patient',
    link_copied: 'Lien du patient copié.',
    cancel: "Annuler l'action",
    cancelled: 'Action annulée : ses factures sont de nouveau prêtes à percevoir.',
    refund_amount: 'Montant à rembourser ({currency})',
    refund_hint: 'Laissez vide pour rembourser tout ce qui reste ({remaining}).',
    refund: 'Rembourser',
    refund_bad_amount: 'Entrez un montant comme 10,00.',
    refund_sent: 'Remboursement de {amount} envoyé (Stripe : {status}).',
    receipt: 'Reçu',
    receipt_pdf: 'Reçu (PDF)',
    receipt_open: 'Ouvrir le reçu',
    receipt_opened: 'Reçu ouvert dans un nouvel onglet.',
    receipt_blocked: 'Le reçu est prêt : utilisez « Ouvrir le reçu ».',
    history: 'Historique',
    history_omitted: '{count} entrées courantes (pages de paiement ouvertes et expirées) ne sont pas listées.',
    live_changed: '{label} : {status}.',
    actor_staff: 'personnel ({who})',
    actor_patient: 'le patient',
    actor_stripe: 'Stripe ({who})',
    actor_reconcile: 'rapprochement (Stripe consulté)',

    status_words: {
      assigned: 'Attribuée : en attente du patient',
      checkout_open: 'Le patient est sur la page de paiement',
      processing: 'Paiement en cours de traitement',
      paid: 'Payée',
      partially_refunded: 'Partiellement remboursée',
      refunded: 'Remboursée',
      failed: 'Paiement échoué',
      cancelled: 'Annulée',
      expired: 'Expirée',
    },
    invoice_status_words: {
      unprocessed: 'Non traitée',
      selected: 'Prête à percevoir',
      pending: 'Paiement en attente',
      paid: 'Payée (complétée)',
    },
  },
};

// ---------------------------------------------------------------------------
// 2. State
// ---------------------------------------------------------------------------

const ACTION_STATUSES_LIVE = ['assigned', 'checkout_open', 'processing'];
const CANCELLABLE = ['assigned', 'checkout_open']; // openapi: cancel refuses `processing`
const REFUNDABLE = ['paid', 'partially_refunded'];
const HAS_RECEIPT = ['paid', 'partially_refunded', 'refunded'];
const INVOICE_GROUPS = ['unprocessed', 'selected', 'pending', 'paid'];

const state = {
  lang: 'en',
  clinicId: 'demo-clinic',
  patientId: 'demo-patient',
  visitId: 'demo-visit',
  tokens: null,             // {clinic, promise of {staff, support}}
  tokenNote: null,          // {key, vars}: what the Local run section says about the tokens
  settings: null,           // the clinic's settings as staff read them (for the label)
  settingsShown: null,      // the settings the support form shows
  settingsEdited: new Set(),// ids of support fields typed in since the last read
  lastInvoices: null,       // the last invoice list, the last selection, the last assignable invoices:
  lastSelection: null,      //   kept to redraw them in the other language
  lastAssignable: null,
  actions: new Map(),       // action_id -> the action as shown in its tile
  shownSeq: 0,              // counts answers shown on tiles…
  shownAt: new Map(),       // …and action_id -> when its tile last changed from an answer
  etags: new Map(),         // action_id -> {etag, action}: the last GET /actions/{id} answer
  versions: new Map(),      // action_id -> highest version known, from events and answers alike
  receiptUrls: new Map(),   // action_id -> blob URL of the fetched receipt
  invoiceReads: 0,          // sequence number of the latest invoice list read
  assignAttempt: null,      // {key, fingerprint}: the Idempotency-Key of this attempt of the form
  events: null,             // AbortController of the live-event reader
  billingOpen: false,
  actionsOpen: false,
};

// ---------------------------------------------------------------------------
// 3. Small helpers
// ---------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** A translated text, with {name} placeholders filled from vars. */
function t(key, vars = {}) {
  const text = WORDS[state.lang][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}
const statusWords = (status) => WORDS[state.lang].status_words[status] ?? status;
const invoiceStatusWords = (status) => WORDS[state.lang].invoice_status_words[status] ?? status;

/** The locale for numbers, dates and the assigned action: fr-CA or en-CA. */
const locale = () => (state.lang === 'fr' ? 'fr-CA' : 'en-CA');

/** Builds an element: el('p', {class: 'x', 'data-status': s}, 'text', child…). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Amounts are integer minor units (cents); every visitpay currency has two decimals. */
function money(cents, currency) {
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: currency.toUpperCase() }).format(cents / 100);
}

/** "12", "12.5", "12,50" -> 1250 cents, by string arithmetic (no floating point); null if not an amount. */
function toCents(text) {
  const match = /^\s*(\d{1,6})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** A moment as the clinic reads it: in its time zone (settings), else the browser's. */
function dateTime(iso) {
  const timeZone = state.settings?.time_zone || state.settingsShown?.time_zone;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(new Date(iso));
}
/** A service date (YYYY-MM-DD) is a calendar day: format it in UTC so no time zone shifts it. */
function day(isoDate) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(`${isoDate}T00:00:00Z`));
}

/** A random key for Idempotency-Key (the API takes [A-Za-z0-9_.:-]{1,128}; a UUID fits). */
function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function say(text) {
  $('#message').textContent = text;
}
function clearError() {
  $('#error').textContent = '';
}
/** API errors show their stable `code` (what a client matches on) and the human `message`. */
function showError(err) {
  $('#error').textContent = err && err.code ? `${err.code}: ${err.message}` : String((err && err.message) || err);
}

/**
 * Wraps a user action: clears the last error, ignores a second click while the
 * first is under way (aria-busy rather than `disabled`, so keyboard focus
 * stays on the button), and shows any error.
 */
function userAction(fn) {
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

// ---------------------------------------------------------------------------
// 4. The API: one helper, then one small function per call.
// ---------------------------------------------------------------------------

/** An API error: `code` is stable (match on it), `message` is for people. */
class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function toApiError(response) {
  const retryAfter = response.headers.get('Retry-After');
  let code = `http_${response.status}`;
  let message = response.statusText || 'Request failed';
  try {
    const body = await response.json(); // {"error": {"code": "…", "message": "…"}}
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) {
    // Not JSON (a proxy's page): keep the HTTP status as the code.
  }
  if (retryAfter) message += ` (Retry-After: ${retryAfter} s)`; // 503s say when to retry
  return new ApiError(response.status, code, message, retryAfter);
}

/**
 * Calls the API on this origin. Sends the bearer token and a JSON body;
 * answers {status, headers, body} (body: parsed JSON, a Blob for a receipt,
 * null for 304), or the Response itself with `raw` (a stream). Any non-2xx
 * answer other than 304 throws an ApiError. A 401 also forgets the cached
 * tokens: a token expires (after 12 h) while the console stays open, and the
 * next call then mints fresh ones.
 */
/**
 * The API's base path: the console is served at `<base>/console`, as the API
 * is under `<base>` (API Gateway's stage, or VISITPAY_BASE_PATH locally).
 */
const BASE = location.pathname.replace(/\/console\/?$/, '');

async function api(method, path, { token, body, headers = {}, accept = 'application/json', raw = false, signal } = {}) {
  const init = { method, headers: { Accept: accept, ...headers }, cache: 'no-store', signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', 'The server did not answer.');
  }
  if (response.status === 304) return { status: 304, headers: response.headers, body: null };
  if (response.status === 401 && token) state.tokens = null;
  if (!response.ok) throw await toApiError(response);
  if (raw) return response;
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await response.json() : await response.blob();
  return { status: response.status, headers: response.headers, body: data };
}

const seg = encodeURIComponent; // every id goes into a path segment escaped

/** The clinic's tokens, minted once; a failed mint is tried again on the next call. */
async function tokens() {
  if (!state.tokens || state.tokens.clinic !== state.clinicId) {
    state.tokens = { clinic: state.clinicId, promise: getTokens(state.clinicId) };
  }
  const current = state.tokens;
  try {
    return await current.promise;
  } catch (err) {
    if (state.tokens === current) state.tokens = null;
    throw err;
  }
}
const staffToken = async () => (await tokens()).staff;
const supportToken = async () => (await tokens()).support;

/** Local only: POST /_local/tokens mints a dev JWT (in production the EMR's login provides it). */
async function mintToken(clinicId, role) {
  const { body } = await api('POST', '/_local/tokens', { body: { clinic_id: clinicId, role } });
  return body.token;
}

/** GET /clinics/{clinic_id}/payment-settings (staff of the clinic, or support). */
async function getPaymentSettings(clinicId, token) {
  const { body } = await api('GET', `/clinics/${seg(clinicId)}/payment-settings`, { token });
  return body;
}

/** PUT /clinics/{clinic_id}/payment-settings (support): a full replacement. */
async function putPaymentSettings(clinicId, settings) {
  const { body } = await api('PUT', `/clinics/${seg(clinicId)}/payment-settings`, { token: await supportToken(), body: settings });
  return body;
}

/** GET /patients/{patient_id}/invoices[?status=unprocessed|selected|pending|paid]. */
async function listInvoices(patientId, status) {
  const query = status ? `?status=${seg(status)}` : '';
  const { body } = await api('GET', `/patients/${seg(patientId)}/invoices${query}`, { token: await staffToken() });
  return body.invoices;
}

/** POST /patients/{patient_id}/invoices/select ("Make a payment"): answers {invoices, total}. */
async function selectInvoices(patientId, invoiceIds) {
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
async function assignAction(visitId, input, idempotencyKey) {
  const { body, headers } = await api('POST', `/visits/${seg(visitId)}/actions`, {
    token: await staffToken(),
    headers: { 'Idempotency-Key': idempotencyKey },
    body: input,
  });
  return { action: body, replayed: headers.get('Idempotent-Replayed') === 'true' };
}

/** GET /visits/{visit_id}/actions: the visit's actions (never with `patient_url`). */
async function listVisitActions(visitId) {
  const { body } = await api('GET', `/visits/${seg(visitId)}/actions`, { token: await staffToken() });
  return body.actions;
}

/**
 * GET /actions/{action_id}, conditionally: it sends the last ETag in
 * If-None-Match, and 304 Not Modified (no body) means "keep what you have".
 * Answers are `no-store`, so the client keeps the tag and the body itself.
 * (This console reads on events; a client that polls saves the body each time.)
 */
async function getAction(actionId) {
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

/** POST /actions/{action_id}/cancel (no body needed): the invoices go back to `selected`. */
async function cancelAction(actionId) {
  const { body } = await api('POST', `/actions/${seg(actionId)}/cancel`, { token: await staffToken() });
  return body;
}

/**
 * POST /actions/{action_id}/refund, `{"amount": cents}` or no body for all
 * that remains. No Idempotency-Key here: the API takes none for refunds and
 * treats a repeat within a minute as the same refund.
 */
async function refundAction(actionId, amountCents) {
  const { body } = await api('POST', `/actions/${seg(actionId)}/refund`, {
    token: await staffToken(),
    body: amountCents === null ? undefined : { amount: amountCents },
  });
  return body;
}

/** GET /actions/{action_id}/receipt[?format=pdf]&lang=fr|en: the patient's receipt, as a Blob. */
async function getReceipt(actionId, format) {
  const query = new URLSearchParams({ lang: state.lang });
  if (format === 'pdf') query.set('format', 'pdf');
  const { body } = await api('GET', `/actions/${seg(actionId)}/receipt?${query}`, {
    token: await staffToken(),
    accept: format === 'pdf' ? 'application/pdf' : 'text/html',
  });
  return body;
}

/**
 * Local only: GET /_local/events?clinic=… (Server-Sent Events), as a
 * streaming Response. The server sends only what happens from now on (no
 * resumption), so the reader re-reads what it shows after each reconnect.
 */
async function openEventStream(clinicId, signal) {
  return api('GET', `/_local/events?clinic=${seg(clinicId)}`, {
    token: await staffToken(),
    accept: 'text/event-stream',
    raw: true,
    signal,
  });
}

// ---------------------------------------------------------------------------
// 5. Live events. EventSource cannot send an Authorization header, so the
//    stream is read with fetch() and parsed here, frame by frame.
// ---------------------------------------------------------------------------

/** Shows the reader's state: `connected`, `reconnecting` or `stopped`. */
function setLive(liveState) {
  const live = $('#live-status');
  live.dataset.state = liveState;
  $('.live-text', live).textContent = t(`live_${liveState}`);
}

const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 30000;
const IDLE_LIMIT_MS = 45000; // the server speaks (a `: keep-alive` at least) every 15 s
const IDLE_CHECK_MS = 5000;

/** Starts (or restarts, for another clinic) the reader. */
function startEvents() {
  if (state.events) state.events.abort();
  const controller = new AbortController();
  state.events = controller;
  runEvents(controller.signal);
}

/**
 * Keeps a connection open until `signal` aborts. After a drop it waits
 * (reconnectDelay; a connect resets it) and connects again. A 401 is an
 * expired token: api() forgot the tokens, so the next attempt mints fresh
 * ones. A 403 is final: the token's clinic is not this clinic.
 */
async function runEvents(signal) {
  let failures = 0;
  let connections = 0;
  while (!signal.aborted) {
    try {
      await connectOnce(signal, () => {
        failures = 0;
        setLive('connected');
        // Events sent while disconnected are lost (the server does not resume): re-read what is shown.
        if (connections++ > 0) refreshShown();
      });
    } catch (err) {
      if (signal.aborted) return;
      if (err.status === 403) {
        stopEvents(signal, err);
        return;
      }
    }
    if (signal.aborted) return;
    setLive('reconnecting');
    await sleep(reconnectDelay(failures++));
  }
}

/** Retrying cannot change a refusal: say so and stop (Apply in Local run starts again). */
function stopEvents(signal, err) {
  if (state.events && state.events.signal === signal) state.events = null;
  setLive('stopped');
  showError(err);
}

/** 1 s, 2 s, 4 s… up to 30 s, each up to 20 % shorter so clients dropped together come back spread out. */
function reconnectDelay(failures) {
  const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** Math.min(failures, 5));
  return delay * (1 - Math.random() * 0.2);
}

/**
 * One connection, with its own AbortController: the reader's signal or the
 * idle watchdog ends it. Its listener on the reader's signal goes when it
 * ends, so reconnects do not pile listeners up on that long-lived signal.
 */
async function connectOnce(signal, onConnected) {
  const connection = new AbortController();
  const abort = () => connection.abort();
  signal.addEventListener('abort', abort, { once: true });
  const watchdog = idleWatchdog(abort);
  try {
    const response = await openEventStream(state.clinicId, connection.signal);
    onConnected();
    await readFrames(response.body, connection.signal, handleFrame, watchdog.heard);
  } finally {
    watchdog.stop();
    signal.removeEventListener('abort', abort);
  }
}

/**
 * Calls onIdle once the stream has been silent for IDLE_LIMIT_MS: a
 * connection can die without an error (a laptop asleep, a network change).
 * It compares wall-clock times, which keep running while timers are paused.
 */
function idleWatchdog(onIdle) {
  let last = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - last < IDLE_LIMIT_MS) return;
    clearInterval(timer);
    onIdle();
  }, IDLE_CHECK_MS);
  return { heard: () => { last = Date.now(); }, stop: () => clearInterval(timer) };
}

/**
 * Reads an SSE stream: `field: value` lines, a blank line ends a frame, lines
 * starting with ':' are comments (the server's keep-alives: they only tell
 * onHeard the stream is alive). `id:` (`<action_id>:<version>`) is not kept:
 * the version in the data de-duplicates. `retry:` is ignored: reconnectDelay
 * decides.
 */
async function readFrames(stream, signal, onFrame, onHeard) {
  const reader = stream.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal.addEventListener('abort', cancel, { once: true });
  const decoder = new TextDecoder();
  const lines = lineSplitter();
  let frame = newFrame();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onHeard();
      for (const line of lines(decoder.decode(value, { stream: true }))) {
        if (line !== '') {
          addField(frame, line);
          continue;
        }
        if (frame.data.length) onFrame({ event: frame.event, data: frame.data.join('\n') });
        frame = newFrame();
      }
    }
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

const newFrame = () => ({ event: 'message', data: [] });

/** One `field: value` line into the frame; comments (':…') and other fields are skipped. */
function addField(frame, line) {
  if (line.startsWith(':')) return;
  const colon = line.indexOf(':');
  const field = colon < 0 ? line : line.slice(0, colon);
  const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
  if (field === 'event') frame.event = value;
  else if (field === 'data') frame.data.push(value);
}

/**
 * Turns chunks of text into complete lines. CRLF, LF and a lone CR each end
 * a line (the SSE spec allows all three), and a CRLF may be split across two
 * chunks: a CR that ends a chunk makes a LF that starts the next one its own.
 */
function lineSplitter() {
  let rest = '';
  let endedWithCR = false;
  return (chunk) => {
    let text = rest + chunk;
    if (endedWithCR && text !== '') {
      if (text.startsWith('\n')) text = text.slice(1);
      endedWithCR = false;
    }
    const lines = [];
    const ending = /\r\n|\r|\n/g;
    let start = 0;
    for (let match; (match = ending.exec(text));) {
      lines.push(text.slice(start, match.index));
      start = ending.lastIndex;
    }
    if (start === text.length && text.endsWith('\r')) endedWithCR = true;
    rest = text.slice(start);
    return lines;
  };
}

function handleFrame(frame) {
  // The server fell behind and dropped events for this listener: re-read everything shown.
  if (frame.event === 'resync') {
    refreshShown();
    return;
  }
  if (frame.event !== 'action') return;
  let event;
  try {
    event = JSON.parse(frame.data);
  } catch (_) {
    return; // not ours to show
  }
  onActionEvent(event);
}

/**
 * An action changed. Events can come twice, out of order, or after an answer
 * that already showed the change: only a version higher than any known for
 * the action (from events and answers) counts. The tile changes at once from
 * the event; the action is then re-read for its history (the event is
 * provisional: the read is the truth).
 */
function onActionEvent(event) {
  if (!event || !event.action_id || event.clinic_id !== state.clinicId) return;
  if (!(event.version > knownVersion(event.action_id))) return;
  noteVersion(event.action_id, event.version);

  const shown = state.actions.get(event.action_id);
  if (shown) {
    const patched = {
      ...shown,
      version: event.version,
      status: event.status,
      refunded_amount: event.refunded_amount ?? shown.refunded_amount,
      disputed: event.disputed ?? shown.disputed,
      refund_needed: event.refund_needed ?? shown.refund_needed,
    };
    state.actions.set(event.action_id, patched);
    renderTile(patched);
    if (event.status !== shown.status) say(t('live_changed', { label: patched.label, status: statusWords(event.status) }));
    refreshAction(event.action_id);
  } else if (event.visit_id === state.visitId && state.actionsOpen) {
    refreshVisitActions().catch(showError); // a new action in this visit (assigned elsewhere)
  }
  scheduleInvoiceRefresh(); // paid invoices show as paid in Private billing
}

let invoiceRefreshTimer = null;
/** Several events in a burst cause one invoice read. */
function scheduleInvoiceRefresh() {
  if (!state.billingOpen) return;
  clearTimeout(invoiceRefreshTimer);
  invoiceRefreshTimer = setTimeout(() => loadInvoices().catch(showError), 150);
}

/** After a reconnect or a resync: re-read the shown actions and invoices. */
function refreshShown() {
  if (state.actionsOpen) refreshVisitActions().catch(showError);
  scheduleInvoiceRefresh();
}

// ---------------------------------------------------------------------------
// 6. Screens
// ---------------------------------------------------------------------------

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
  renderAllTiles();
}

// --- Navigation -----------------------------------------------------------

function showScreen(name, { focus = true } = {}) {
  for (const screen of ['support', 'chart', 'visit']) {
    $(`#screen-${screen}`).hidden = screen !== name;
    const button = $(`#nav-${screen}`);
    if (screen === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  // Moving focus to the screen's heading tells screen-reader users the view changed.
  if (focus) $(`#screen-${name} h2`).focus();
  if (name === 'support') loadSettingsForm().catch(showError);
}

// --- Local run: ids and tokens --------------------------------------------

/** A staff and a support token for the clinic (the local runner mints them). */
async function getTokens(clinic) {
  setTokenNote('ctx_getting', { clinic });
  try {
    const [staff, support] = await Promise.all([mintToken(clinic, 'staff'), mintToken(clinic, 'support')]);
    setTokenNote('ctx_ready', { clinic });
    return { staff, support };
  } catch (err) {
    setTokenNote('ctx_failed', { clinic });
    throw err;
  }
}

function setTokenNote(key, vars) {
  state.tokenNote = { key, vars };
  $('#ctx-tokens').textContent = t(key, vars);
}

/** (Re)connects the console to a clinic: new tokens, a new event stream, nothing shown of the last one. */
function connectClinic() {
  state.tokens = null;
  state.settings = null;
  forgetActions();
  tokens().catch(showError);
  startEvents();
  loadPaymentLabel().catch(() => {}); // the label button; errors show when staff use it
}

function forgetActions() {
  state.actions.clear();
  state.etags.clear();
  state.versions.clear();
  $('#actions').replaceChildren();
}

async function onContextSubmit(event) {
  event.preventDefault();
  const clinic = $('#ctx-clinic').value.trim();
  const patient = $('#ctx-patient').value.trim();
  const visit = $('#ctx-visit').value.trim();
  const clinicChanged = clinic !== state.clinicId;
  const visitChanged = visit !== state.visitId;
  Object.assign(state, { clinicId: clinic, patientId: patient, visitId: visit });
  for (const node of $$('.patient-id-text')) node.textContent = patient;
  for (const node of $$('.visit-id-text')) node.textContent = visit;
  state.lastSelection = null;
  renderSelectionTotal(null);
  $('#assign-form').hidden = true; // its invoices were another patient's or visit's
  if (clinicChanged) {
    forgetPatientLinks(); // another clinic's patients' secrets
    connectClinic();
  } else {
    if (visitChanged) forgetActions();
    if (!state.events) startEvents(); // the reader stopped on a refusal: try again
  }
  await tokens(); // also retries a failed mint
  if (!$('#screen-support').hidden) await loadSettingsForm();
  if (state.billingOpen) await loadInvoices();
  if (state.actionsOpen) await refreshVisitActions();
}

// --- Screen 1: support, payment settings ----------------------------------

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
};

async function loadSettingsForm() {
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
  state.settingsShown = s;
  renderSettingsUpdated();
}

function renderSettingsUpdated() {
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
  };
}

async function onSettingsSubmit(event) {
  event.preventDefault();
  const clinic = state.clinicId;
  const saved = await putPaymentSettings(clinic, readSettingsForm());
  state.settingsEdited.clear();
  fillSettingsForm(saved);
  state.settings = saved; // support sees what staff will: the label changes at once
  renderPaymentLabel();
  say(t('settings_saved', { clinic }));
}

// --- Screen 2: patient chart, Private billing (steps 1 to 3) ---------------

async function onOpenPrivateBilling() {
  $('#private-billing').hidden = false;
  state.billingOpen = true;
  await loadInvoices();
}

/** Reads the list (with the status filter, if one is chosen); a late answer to an older read is dropped. */
async function loadInvoices() {
  const read = ++state.invoiceReads;
  const invoices = await listInvoices(state.patientId, $('#invoice-filter').value || undefined);
  if (read !== state.invoiceReads) return;
  state.lastInvoices = invoices;
  renderInvoices(invoices);
}

/** The ticked values of checkboxes named `name`. */
const checkedValues = (name, root = document) => $$(`input[name="${name}"]:checked`, root).map((box) => box.value);

/**
 * Draws the list grouped by status. The list is redrawn on every live event,
 * so rows that did not change are kept as they are (the same elements: a
 * click or the keyboard focus on them is not lost), and ticks are kept.
 */
function renderInvoices(invoices) {
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
async function onMakePayment() {
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

function renderSelectionTotal(selection) {
  $('#selection-total').textContent = selection
    ? t('selection_total', {
      total: money(selection.total.amount, selection.total.currency),
      ids: selection.invoices.map((invoice) => invoice.invoice_id).join(', '),
    })
    : '';
}

// --- Screen 3: the visit, Actions and Notes+, assign (steps 4 to 8) --------

function onOpenVisit() {
  $('#visit-window').hidden = false;
}

function onOpenActionsNotes() {
  $('#actions-notes').hidden = false;
  $('#open-actions-notes').setAttribute('aria-pressed', 'true');
}

async function onOpenPatientActions() {
  $('#patient-actions').hidden = false;
  state.actionsOpen = true;
  await refreshVisitActions();
}

/** "+ Assign actions": a new attempt of the form (and so a new Idempotency-Key). */
async function onAssignActions() {
  state.assignAttempt = null;
  state.lastAssignable = null;
  $('#assign-form').hidden = false;
  $('#choose-payment-label').setAttribute('aria-pressed', 'false');
  $('#assign-invoices').hidden = true;
  $('#assign-submit').hidden = true;
  $('#assign-invoice-list').replaceChildren();
  await loadPaymentLabel();
}

function closeAssignForm() {
  $('#assign-form').hidden = true;
  state.assignAttempt = null;
  $('#assign-actions').focus();
}

/** Staff read the clinic's settings for its label (it varies per clinic). */
async function loadPaymentLabel() {
  try {
    state.settings = await getPaymentSettings(state.clinicId, await staffToken());
  } catch (err) {
    state.settings = null;
    if (err.code !== 'settings_not_found') throw err;
  }
  renderPaymentLabel();
}

function renderPaymentLabel() {
  const s = state.settings;
  $('#choose-payment-label').textContent = s ? s.label[state.lang] : t('label_fallback');
  $('#assign-label-note').textContent = !s ? t('no_settings') : s.enabled ? '' : t('payments_off');
}

/** Step 7: the label is chosen; step 8 lists the invoices "Make a payment" made ready. */
async function onChoosePaymentLabel() {
  $('#choose-payment-label').setAttribute('aria-pressed', 'true');
  const invoices = await listInvoices(state.patientId, 'selected');
  state.lastAssignable = invoices;
  renderAssignInvoices(invoices);
  $('#assign-invoices').hidden = false;
  $('#assign-submit').hidden = false;
}

function renderAssignInvoices(invoices) {
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

async function onAssignSubmit(event) {
  event.preventDefault();
  const invoiceIds = checkedValues('assign-invoice', $('#assign-invoice-list'));
  if (!invoiceIds.length) {
    showError({ message: t('tick_invoices') });
    return;
  }
  // The amount is never sent: the server adds up the stored invoices.
  const input = { patient_id: state.patientId, invoice_ids: invoiceIds, locale: locale() };
  const { action, replayed } = await assignAction(state.visitId, input, idempotencyKeyFor(input));
  // patient_url is only in this answer (the server keeps the token hashed). The link is the
  // patient's secret: a production EMR should not persist it in the browser. It is kept here
  // (for the tab's life) so a reload of the local console can still show it.
  if (action.patient_url) sessionStorage.setItem(linkKey(action.action_id), action.patient_url);
  showAction(action);
  closeAssignForm();
  say(replayed ? t('replayed') : t('assigned', { amount: money(action.amount, action.currency) }));
  scheduleInvoiceRefresh();
}

const LINK_PREFIX = 'visitpay.patient_url.';
const linkKey = (actionId) => `${LINK_PREFIX}${actionId}`;

/** Drops every kept patient link (on a change of clinic). */
function forgetPatientLinks() {
  const keys = Array.from({ length: sessionStorage.length }, (_, i) => sessionStorage.key(i));
  for (const key of keys) if (key && key.startsWith(LINK_PREFIX)) sessionStorage.removeItem(key);
}

// --- Screen 3: the actions' tiles ------------------------------------------

/**
 * Reads the visit's actions. A tile that changed from an answer while the
 * list was read (an assign, a cancel, a refund) is newer than the list: kept;
 * so is a tile showing a higher version than the list's item.
 */
async function refreshVisitActions() {
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
async function refreshAction(actionId) {
  try {
    const action = await getAction(actionId);
    if (state.actions.has(actionId)) showAction(action); // not if the visit changed meanwhile
  } catch (err) {
    showError(err);
  }
}

/** The highest version known for an action, from events and answers alike (0: none yet). */
const knownVersion = (actionId) => state.versions.get(actionId) ?? 0;

function noteVersion(actionId, version) {
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
function showAction(action) {
  const id = action.action_id;
  noteVersion(id, action.version);
  if (olderThanShown(action)) return;
  state.shownAt.set(id, ++state.shownSeq);
  state.actions.set(id, action);
  renderTile(action);
}

/** Redraws every tile (newest first), each through renderTile so typing and focus survive. */
function renderAllTiles() {
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
function renderTile(action) {
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
const tileOf = (actionId) => $$('.action-tile', $('#actions')).find((tile) => tile.dataset.actionId === actionId);

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

// Tile buttons: one listener on the container, so re-rendered tiles need no rebinding.

async function onTileButton(event) {
  const button = event.target.closest('button');
  const tile = button.closest('.action-tile');
  const id = tile.dataset.actionId;
  if (button.classList.contains('action-cancel')) await onCancel(id);
  else if (button.classList.contains('copy-link')) await copyLink($('.patient-link', tile));
  else if (button.classList.contains('receipt-link')) await openReceipt(id);
  else if (button.classList.contains('receipt-pdf')) await downloadReceiptPdf(id);
}

async function onCancel(actionId) {
  showAction(await cancelAction(actionId));
  say(t('cancelled'));
  scheduleInvoiceRefresh();
}

async function onRefundSubmit(event) {
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

/** A link such as `?format=pdf&lang=fr`: relative (no scheme, no host) and asking for the PDF. */
function isRelativePdfLink(link) {
  const href = link.getAttribute('href');
  if (/^([a-z][a-z0-9+.-]*:|\/\/)/i.test(href)) return false;
  return new URL(href, 'https://receipt.invalid/').searchParams.get('format') === 'pdf';
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

// ---------------------------------------------------------------------------
// 7. Start
// ---------------------------------------------------------------------------

function bind() {
  $('#lang-en').addEventListener('click', () => applyLanguage('en'));
  $('#lang-fr').addEventListener('click', () => applyLanguage('fr'));
  for (const name of ['support', 'chart', 'visit']) {
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
}

function start() {
  bind();
  const stored = sessionStorage.getItem('visitpay.console.lang');
  applyLanguage(stored === 'fr' ? 'fr' : 'en');
  state.clinicId = $('#ctx-clinic').value.trim();
  state.patientId = $('#ctx-patient').value.trim();
  state.visitId = $('#ctx-visit').value.trim();
  showScreen('chart', { focus: false });
  connectClinic();
}

start();
