// The proxy configures the recorder through the tag it injects:
//
//   <script src="/__loupe/recorder.js" defer data-loupe="{JSON}"></script>
//
// so the page never needs a global or an inline script (which a CSP could
// forbid).

/** Config is the JSON in the data-loupe attribute, version 1. */
export interface Config {
  /** Format version; only 1 is understood. */
  v: 1;
  /** Page view id minted by the proxy for this HTML response. */
  pv: string;
  /** Opaque token the collector checks; sent back with every batch. */
  token: string;
  /** Ingest URL, normally "/__loupe/ingest" on the site's own origin. */
  ingest: string;
  /** CSS selector list of elements to block outright; "" for none. */
  block: string;
  /** CSS selector list of elements whose text is masked; "" for none. */
  maskText: string;
  /** CSS selector of the element naming the visitor (user.ts); "" for none. */
  user: string;
}

/**
 * readConfig returns the recorder's config, or null when the tag is missing
 * or its attribute is not a valid version 1 config.
 */
export function readConfig(): Config | null {
  // currentScript is null for module scripts and once a script has finished
  // its first run; a deferred classic script still sees it.
  const el =
    (document.currentScript as HTMLScriptElement | null) ??
    document.querySelector<HTMLScriptElement>('script[data-loupe]');
  const raw = el?.getAttribute('data-loupe');
  if (!raw) return null;
  // Take Loupe's tag out of the page once read: the snapshot then shows the
  // site's own DOM, and the token never lands in the recorded events.
  el!.remove();
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!c || c.v !== 1) return null;
  const str = (k: string): string | null => {
    const x = c[k] ?? '';
    return typeof x === 'string' ? x : null;
  };
  const pv = str('pv');
  const token = str('token');
  const ingest = str('ingest');
  const block = str('block');
  const maskText = str('maskText');
  if (!pv || !token || !ingest || block === null || maskText === null) {
    return null;
  }
  // rrweb calls element.matches() with these; a bad selector would throw on
  // every node. A privacy rule that cannot be applied means no recording.
  if (!validSelector(block) || !validSelector(maskText)) return null;
  // An unusable user selector costs the session its user id, not its
  // recording.
  const user = str('user') ?? '';
  return { v: 1, pv, token, ingest, block, maskText, user: validSelector(user) ? user : '' };
}

function validSelector(s: string): boolean {
  if (!s) return true;
  try {
    document.createDocumentFragment().querySelector(s);
    return true;
  } catch {
    return false;
  }
}
