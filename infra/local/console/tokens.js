// The clinic's tokens (Local run). The local runner mints them; in production
// the EMR's login provides them.

import { state } from './state.js';
import { api } from './http.js';
import { t } from './words.js';
import { $ } from './dom.js';

/** The clinic's tokens, minted once; a failed mint is tried again on the next call. */
export async function tokens() {
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
export const staffToken = async () => (await tokens()).staff;
export const supportToken = async () => (await tokens()).support;

/** Local only: POST /_local/tokens mints a dev JWT (in production the EMR's login provides it). */
async function mintToken(clinicId, role) {
  const { body } = await api('POST', '/_local/tokens', { body: { clinic_id: clinicId, role } });
  return body.token;
}

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

