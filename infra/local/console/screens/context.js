// Local run: which clinic, patient and visit the console works on.

import { state } from '../state.js';
import { $, $$, showError } from '../dom.js';
import { tokens } from '../tokens.js';
import { startEvents } from '../events.js';
import { loadInvoices, renderSelectionTotal } from './chart.js';
import { refreshVisitActions, forgetPatientLinks } from './tiles.js';
import { loadPaymentLabel } from './visit.js';
import { loadSettingsForm } from './settings.js';

/** (Re)connects the console to a clinic: new tokens, a new event stream, nothing shown of the last one. */
export function connectClinic() {
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

export async function onContextSubmit(event) {
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
