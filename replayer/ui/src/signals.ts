// Names of behaviour signals and timeline entries, for people.

/** SIGNALS are the kinds a session counts (its "signals" object), in display order. */
export const SIGNALS: [kind: string, label: string][] = [
  ['rage_click', 'Rage click'],
  ['dead_click', 'Dead click'],
  ['error_click', 'Error click'],
  ['js_error', 'JS error'],
  ['server_error', 'Server error'],
  ['form_abandon', 'Form abandoned'],
];

/** FILTER_SIGNALS are every kind the list filters on: the counted ones and those only listed. */
export const FILTER_SIGNALS: [kind: string, label: string][] = [
  ...SIGNALS,
  ['console_error', 'Console error'],
  ['failed_request', 'Failed request'],
  ['slow_request', 'Slow request'],
];

/** SHORT names a counted signal in the list's narrow badges. */
const SHORT: Record<string, string> = {
  rage_click: 'Rage',
  dead_click: 'Dead',
  error_click: 'Err click',
  js_error: 'JS',
  server_error: '5xx',
  form_abandon: 'Form',
};

export const shortLabel = (kind: string) => SHORT[kind] ?? signalLabel(kind);

const LABELS: Record<string, string> = {
  ...Object.fromEntries(SIGNALS),
  page: 'Page',
  click: 'Click',
  input: 'Input',
  console_error: 'Console error',
  request: 'Request',
  failed_request: 'Failed request',
  slow_request: 'Slow request',
  navigation: 'Navigation',
};

/** signalLabel names a signal or timeline kind. */
export function signalLabel(kind: string): string {
  return LABELS[kind] ?? kind.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/** Kinds drawn as timeline markers; the rest are only listed. */
export const MARKER_KINDS = new Set([
  'page',
  'click',
  'rage_click',
  'dead_click',
  'error_click',
  'js_error',
  'console_error',
  'server_error',
  'failed_request',
  'slow_request',
  'form_abandon',
]);

/** Kinds that are problems: they are what n/p jump between first and are drawn tall. */
export const PROBLEM_KINDS = new Set([
  'rage_click',
  'dead_click',
  'error_click',
  'js_error',
  'console_error',
  'server_error',
  'failed_request',
  'slow_request',
  'form_abandon',
]);

/** Kinds shown in the console and errors panel. */
export const ERROR_KINDS = new Set(['js_error', 'console_error']);

/** FrictionTerm is one term of the store's friction formula (store.FrictionTerms). */
interface FrictionTerm {
  kind: string;
  weight: number;
  cap: number;
}

/**
 * FRICTION is the formula the store computes friction with, as the server
 * wrote it on the page (data-friction): the UI only explains it.
 */
const FRICTION: { terms: FrictionTerm[]; converted: number } = (() => {
  try {
    const f = JSON.parse(document.getElementById('app')?.dataset.friction ?? '') as { terms?: FrictionTerm[]; converted?: number };
    return { terms: Array.isArray(f.terms) ? f.terms : [], converted: typeof f.converted === 'number' ? f.converted : 1 };
  } catch {
    return { terms: [], converted: 1 };
  }
})();

/** FRICTION_PLURALS names the signals of each kind that counts. */
const FRICTION_PLURALS: Record<string, string> = {
  rage_click: 'rage clicks',
  error_click: 'error clicks',
  server_error: 'server errors',
  form_abandon: 'abandoned forms',
  dead_click: 'dead clicks',
  js_error: 'JS errors',
};
const plural = (kind: string) => FRICTION_PLURALS[kind] ?? kind;

export const FRICTION_HELP =
  'Friction = ' +
  FRICTION.terms.map((t) => `${t.weight} × ${plural(t.kind)} (at most ${t.cap} counted)`).join(' + ') +
  `; the sum is multiplied by ${FRICTION.converted} if the visitor converted. ` +
  'Rage and error clicks weigh most (the visitor acted and the page failed them), then server errors and ' +
  'abandoned forms (a task failed), then dead clicks and script errors (often harmless alone). ' +
  'Each kind is capped so that one looping error cannot outrank everything. Higher is more worth watching.';

/** frictionParts explains one session's score: the terms that add up to it. */
export function frictionParts(signals: Record<string, number | undefined> | undefined, converted?: boolean): string {
  const terms: string[] = [];
  for (const t of FRICTION.terms) {
    const n = Math.min(signals?.[t.kind] ?? 0, t.cap);
    if (n) terms.push(`${t.weight} × ${n} ${plural(t.kind)}`);
  }
  if (!terms.length) return 'No signal counts toward friction.';
  return terms.join(' + ') + (converted ? ` (×${FRICTION.converted}: converted)` : '');
}
