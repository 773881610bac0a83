// Screen 4: what the clinic's patients received (local run only: the
// outbox keeps every email and text instead of sending it). Each message
// shows what the patient would read; its link opens the patient's page, as
// tapping it on a phone would, and an attachment downloads.

import { state } from '../state.js';
import { t } from '../words.js';
import { $, el, dateTime, showError } from '../dom.js';
import { getOutbox } from '../api.js';

const REFRESH_MS = 2000;
let timer = null;

/** Reads the outbox now, then every 2 s while the screen is shown. */
export function startOutbox() {
  stopOutbox();
  const tick = async () => {
    try {
      await loadOutbox();
    } catch (err) {
      showError(err);
      return; // a refusal stays on screen; Refresh tries again
    }
    timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
}

export function stopOutbox() {
  if (timer) clearTimeout(timer);
  timer = null;
}

export async function loadOutbox() {
  const messages = await getOutbox(state.clinicId);
  const seen = JSON.stringify(messages.map((m) => m.message_id));
  if (seen === state.outboxSeen) return; // unchanged: keep the focus and the reader's place
  state.outboxSeen = seen;
  state.lastOutbox = messages;
  renderOutbox(messages);
}

export function renderOutbox(messages) {
  const list = $('#outbox');
  if (!messages.length) {
    list.replaceChildren(el('li', { class: 'empty' }, t('outbox_empty')));
    return;
  }
  list.replaceChildren(...messages.map(messageItem));
}

function messageItem(m) {
  const link = patientLink(m.body);
  return el('li', { class: 'outbox-message', 'data-channel': m.channel, 'data-message-id': m.message_id },
    el('p', { class: 'outbox-meta' },
      el('strong', {}, t(m.channel === 'email' ? 'outbox_email' : 'outbox_sms')), ` · ${t('outbox_to', { to: m.to })} · ${dateTime(m.at)}`),
    m.subject ? el('p', { class: 'outbox-subject' }, m.subject) : null,
    el('pre', { class: 'outbox-body' }, m.body),
    link ? el('a', { class: 'outbox-link', href: link, target: '_blank', rel: 'noopener noreferrer' }, t('outbox_open_link')) : null,
    ...(m.attachments || []).map((a) => el('button', {
      type: 'button', class: 'outbox-attachment', 'data-filename': a.filename,
    }, t('outbox_download', { name: a.filename }))));
}

/** The first patient-page link in a message's text (every message carries one). */
function patientLink(body) {
  const match = /https?:\/\/\S+\/patient\/actions\/[A-Za-z0-9_.-]+/.exec(body);
  return match ? match[0] : null;
}

/** A click on an attachment's button: the file, from the outbox's base64, as a download. */
export function onOutboxClick(event) {
  const button = event.target instanceof Element && event.target.closest('.outbox-attachment');
  if (!button) return;
  const id = button.closest('.outbox-message').dataset.messageId;
  const message = (state.lastOutbox || []).find((m) => m.message_id === id);
  const file = message && message.attachments.find((a) => a.filename === button.dataset.filename);
  if (!file) return;
  const bytes = Uint8Array.from(atob(file.content_base64), (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: file.content_type }));
  const save = el('a', { href: url, download: file.filename, class: 'visually-hidden' });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
