// Live events. EventSource cannot send an Authorization header, so the
// stream is read with fetch() and parsed here, frame by frame.

import { state } from './state.js';
import { t, statusWords } from './words.js';
import { $, sleep, say, showError } from './dom.js';
import { openEventStream } from './api.js';
import { scheduleInvoiceRefresh } from './screens/chart.js';
import { refreshVisitActions, refreshAction, knownVersion, noteVersion, renderTile } from './screens/tiles.js';

/** Shows the reader's state: `connected`, `reconnecting` or `stopped`. */
export function setLive(liveState) {
  const live = $('#live-status');
  live.dataset.state = liveState;
  $('.live-text', live).textContent = t(`live_${liveState}`);
}

const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 30000;
const IDLE_LIMIT_MS = 45000; // the server speaks (a `: keep-alive` at least) every 15 s
const IDLE_CHECK_MS = 5000;

/** Starts (or restarts, for another clinic) the reader. */
export function startEvents() {
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

/** After a reconnect or a resync: re-read the shown actions and invoices. */
function refreshShown() {
  if (state.actionsOpen) refreshVisitActions().catch(showError);
  scheduleInvoiceRefresh();
}
