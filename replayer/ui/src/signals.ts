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
 * FRICTION_HELP explains the friction score. It restates the formula that
 * the store documents (store.Friction); keep the two in step.
 */
export const FRICTION_HELP =
  'Friction adds up what went wrong in a session, weighted by how much it hurts: ' +
  'each rage click, error click, JS error, server error and abandoned form counts, ' +
  'dead clicks count a little, and a visitor who did not convert counts extra. ' +
  'Higher means more worth watching.';
