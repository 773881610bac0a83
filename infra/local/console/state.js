// The console's state: what it shows and what it keeps between calls.

export const ACTION_STATUSES_LIVE = ['assigned', 'checkout_open', 'processing'];
export const CANCELLABLE = ['assigned', 'checkout_open']; // openapi: cancel refuses `processing`
export const REFUNDABLE = ['paid', 'partially_refunded'];
export const HAS_RECEIPT = ['paid', 'partially_refunded', 'refunded'];
export const INVOICE_GROUPS = ['unprocessed', 'selected', 'pending', 'paid'];

export const state = {
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
  lastOutbox: null,         // the outbox's messages as last shown…
  outboxSeen: null,         // …and their ids, to redraw only when they change
  lastPayouts: null,        // the payouts listed, and the one shown with its lines
  shownPayout: null,
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
