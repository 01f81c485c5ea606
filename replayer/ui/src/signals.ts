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

/**
 * FRICTION_WEIGHTS restate the friction formula that the store documents
 * (store.Friction): what one signal of each kind adds, up to a cap per
 * kind. Keep the two in step.
 */
export const FRICTION_WEIGHTS: [kind: string, weight: number, cap: number, plural: string][] = [
  ['rage_click', 3, 5, 'rage clicks'],
  ['error_click', 3, 5, 'error clicks'],
  ['server_error', 2, 5, 'server errors'],
  ['form_abandon', 2, 3, 'abandoned forms'],
  ['dead_click', 1, 5, 'dead clicks'],
  ['js_error', 1, 5, 'JS errors'],
];

/** FRICTION_CONVERTED multiplies the score of a session that converted. */
export const FRICTION_CONVERTED = 0.5;

export const FRICTION_HELP =
  'Friction = ' +
  FRICTION_WEIGHTS.map(([, w, cap, plural]) => `${w} × ${plural} (at most ${cap} counted)`).join(' + ') +
  `; the sum is multiplied by ${FRICTION_CONVERTED} if the visitor converted. ` +
  'Rage and error clicks weigh most (the visitor acted and the page failed them), then server errors and ' +
  'abandoned forms (a task failed), then dead clicks and script errors (often harmless alone). ' +
  'Each kind is capped so that one looping error cannot outrank everything. Higher is more worth watching.';

/** frictionParts explains one session's score: the terms that add up to it. */
export function frictionParts(signals: Record<string, number | undefined> | undefined, converted?: boolean): string {
  const terms: string[] = [];
  for (const [k, w, cap, plural] of FRICTION_WEIGHTS) {
    const n = Math.min(signals?.[k] ?? 0, cap);
    if (n) terms.push(`${w} × ${n} ${plural}`);
  }
  if (!terms.length) return 'No signal counts toward friction.';
  return terms.join(' + ') + (converted ? ` (×${FRICTION_CONVERTED}: converted)` : '');
}
