// The console's words: one dictionary per language, every visible text comes
// from it. They are not in the script: the server answers them at
// `<base>/console/words.json` ({"en": {…}, "fr": {…}}, each with flat keys plus
// `status_words` and `invoice_status_words`), read once at start-up.

import { state } from './state.js';
import { BASE } from './http.js';

/** The dictionaries, once loadWords() has read them. */
let WORDS = null;

/**
 * Reads the dictionaries. Until they are here nothing is drawn with words, so
 * a failure is said in plain English (there are no words to say it in yet).
 */
export async function loadWords() {
  const url = `${BASE}/console/words.json`;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (_) {
    throw new Error(`The console could not load its words: ${url} did not answer.`);
  }
  if (!response.ok) throw new Error(`The console could not load its words: ${url} answered HTTP ${response.status}.`);
  let words;
  try {
    words = await response.json();
  } catch (_) {
    throw new Error(`The console could not load its words: ${url} is not JSON.`);
  }
  if (!isDictionary(words?.en) || !isDictionary(words?.fr)) {
    throw new Error(`The console could not load its words: ${url} does not hold the en and fr dictionaries.`);
  }
  WORDS = words;
}

/** A language's dictionary: flat keys plus the two status maps. */
const isDictionary = (words) => Boolean(words && words.status_words && words.invoice_status_words);

/** A translated text, with {name} placeholders filled from vars. */
export function t(key, vars = {}) {
  const text = WORDS[state.lang][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}
export const statusWords = (status) => WORDS[state.lang].status_words[status] ?? status;
export const invoiceStatusWords = (status) => WORDS[state.lang].invoice_status_words[status] ?? status;
