// Loupe's browser recorder: rrweb's record() with Loupe's privacy defaults,
// plus batching, delivery and JS error capture. The proxy injects it into
// every HTML page it serves; see config.ts for how it is configured.
//
// It must never break the page: every entry point is wrapped in try/catch,
// and its only global is window.__loupe.

import { record } from '@rrweb/record';
import { readConfig } from './config';
import { encodeEvent } from './split';
import { Uploader, tabID } from './uploader';
import { pageHidden, watchSignals } from './signals';
import { watchUser } from './user';

declare global {
  interface Window {
    /** Set once the recorder has run in this window; guards double injection. */
    __loupe?: { pv: string; stop(): void; flush(): void };
  }
}

const FLUSH_MS = 5000;

/** rrweb's EventType.FullSnapshot. */
const FULL_SNAPSHOT = 2;

/** Caps on error text, so a runaway error loop cannot flood a batch. */
const MAX_MESSAGE = 1000;
const MAX_STACK = 8000;

/**
 * ownsFrame reports whether this window should record itself. The proxy
 * injects into every document, frames included, but rrweb in the top window
 * already records same-origin iframes inside its own snapshot; only frames
 * it cannot reach (cross-origin) record standalone.
 */
function ownsFrame(): boolean {
  if (window === window.top) return true;
  try {
    // Throws a SecurityError when the parent is cross-origin.
    void window.parent.document;
    return false;
  } catch {
    return true;
  }
}

function start(): void {
  if (window.__loupe || !ownsFrame()) return;
  const cfg = readConfig();
  if (!cfg) return;
  // Claim the window before record() runs, so a second copy of the script
  // can never start a second recording.
  const noop = () => {};
  const pv = newID();
  window.__loupe = { pv, stop: noop, flush: noop };

  let stopRecording: (() => void) | undefined;
  // The collector refused the token (expired, session over its limits):
  // recording on would only fill memory.
  const onRefused = () => guard(() => stopRecording && stopRecording());
  const up = new Uploader(
    cfg.ingest,
    cfg.token,
    pv,
    { referrer: document.referrer, language: navigator.language, tab: tabID(newID) },
    onRefused,
  );
  stopRecording = record({
    emit: (e) => {
      try {
        // A mutation burst over the event size cap becomes several events.
        up.add(encodeEvent(e));
        // Send a page's snapshot right away, compressed, rather than at the
        // next tick: a page left within 5 s would otherwise depend on
        // pagehide beacons, which carry plain JSON of at most 64 KiB in all,
        // and a snapshot with inlined CSS is often bigger.
        if (e.type === FULL_SNAPSHOT) up.flush();
      } catch {
        // An event JSON cannot encode is skipped.
      }
    },
    maskAllInputs: true,
    maskInputOptions: {
      color: true,
      date: true,
      'datetime-local': true,
      email: true,
      month: true,
      number: true,
      range: true,
      search: true,
      tel: true,
      text: true,
      time: true,
      url: true,
      week: true,
      textarea: true,
      select: true,
      password: true,
    },
    blockClass: 'rr-block',
    maskTextClass: 'rr-mask',
    // Selectors also apply to nodes that scripts add after the snapshot;
    // the injector marks only what is in the served HTML.
    blockSelector: cfg.block || undefined,
    maskTextSelector: cfg.maskText || undefined,
    inlineStylesheet: true,
    collectFonts: true,
    recordCanvas: false,
    sampling: { mousemove: 50, scroll: 150, input: 'last' },
    // rrweb rethrows errors from its observers unless this returns true.
    errorHandler: () => true,
  });
  if (!stopRecording) return; // rrweb could not start; it has warned already
  if (up.stopped) onRefused();

  const report = (kind: 'error' | 'rejection', err: unknown, message: unknown, source = '', line = 0, column = 0) => {
    try {
      const stack = err instanceof Error ? err.stack : undefined;
      record.addCustomEvent('loupe.error', {
        message: clip(String(message), MAX_MESSAGE),
        stack: clip(stack ?? '', MAX_STACK),
        source: clip(source, MAX_MESSAGE),
        line,
        column,
        kind,
      });
    } catch {
      // e.g. a rejection reason whose toString throws
    }
  };
  const onError = (e: ErrorEvent) => report('error', e.error, e.message, e.filename, e.lineno, e.colno);
  const onRejection = (e: PromiseRejectionEvent) => {
    const r: unknown = e.reason;
    report('rejection', r, r instanceof Error ? r.message : r);
  };
  const flush = () => guard(() => up.flush());
  const onHidden = () => {
    if (document.visibilityState === 'hidden') flush();
  };
  // pagehide is the last event a page reliably gets (also when it enters the
  // back/forward cache, after which it may come back and keep recording).
  const onPageHide = () => guard(() => (pageHidden(), up.drain()));
  // Back from the back/forward cache, or back online: resume sending.
  const onResume = () => guard(() => (up.retry(), up.flush()));
  const timer = window.setInterval(flush, FLUSH_MS);
  let stopSignals = noop;
  guard(() => {
    stopSignals = watchSignals(cfg.ingest, { mask: cfg.maskText, block: cfg.block });
  });
  let stopUser = noop;
  guard(() => (stopUser = watchUser(cfg.user)));

  window.addEventListener('error', onError);
  window.addEventListener('unhandledrejection', onRejection);
  window.addEventListener('pagehide', onPageHide);
  window.addEventListener('pageshow', onResume);
  window.addEventListener('online', onResume);
  document.addEventListener('visibilitychange', onHidden);

  const stop = () =>
    guard(() => {
      stopRecording();
      stopSignals();
      stopUser();
      clearInterval(timer);
      window.removeEventListener('error', onError);
      window.removeEventListener('unhandledrejection', onRejection);
      window.removeEventListener('pagehide', onPageHide);
      window.removeEventListener('pageshow', onResume);
      window.removeEventListener('online', onResume);
      document.removeEventListener('visibilitychange', onHidden);
      up.flush();
    });
  window.__loupe = { pv, stop, flush };
}

/** newID returns 128 random bits as 32 lowercase hex digits. */
function newID(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] + 256).toString(16).slice(1);
  return s;
}

function guard(f: () => void): void {
  try {
    f();
  } catch {
    // never into the page
  }
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) : s;
}

guard(start);
