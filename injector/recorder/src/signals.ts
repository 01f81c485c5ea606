// What the recorder adds to rrweb's events for Loupe's behaviour signals
// (see collector/decode.go, "Signals"), as rrweb custom events (type 5):
//
//   "loupe/click"    {node, x, y, target, field, submit}: after each click, a
//                    readable description of the clicked element: tag, #id,
//                    up to two .classes and up to 40 characters of its text
//                    ("*" for each character when the element is masked or
//                    blocked). Never the value of an input.
//   "loupe/request"  {start}: a fetch or XHR started (Unix ms), from the
//                    Resource Timing entries the browser reports when it
//                    finishes; no function of the page is patched.
//   "loupe/pagehide" {}: the page is being left (or put in the back/forward
//                    cache).

import { record } from '@rrweb/record';

export const CLICK_TAG = 'loupe/click';
export const REQUEST_TAG = 'loupe/request';
export const PAGEHIDE_TAG = 'loupe/pagehide';

const MAX_TEXT = 40;

/** Elements whose description stands for a click on what they contain. */
const INTERACTIVE = 'a,button,input,select,textarea,label,summary,option,[role=button],[role=link],[role=tab],[role=menuitem]';

export interface ClickOptions {
  /** Selectors whose text is masked (rr-mask and the site's maskText). */
  mask: string;
  /** Selectors of blocked elements (rr-block and the site's block). */
  block: string;
}

/** describe returns what loupe/click says about a click's target. */
export function describe(target: Element, opts: ClickOptions): { target: string; field: boolean; submit: boolean } {
  const el = target.closest(INTERACTIVE) || target;
  const tag = el.tagName.toLowerCase();
  let s = tag;
  if (el.id) s += '#' + clip(el.id, 40);
  const classes = typeof el.className === 'string' ? el.className.split(/\s+/).filter((c) => c && !c.startsWith('rr-')) : [];
  for (const c of classes.slice(0, 2)) s += '.' + clip(c, 40);
  const type = (el.getAttribute('type') || '').toLowerCase();
  if (tag === 'input' && type) s += '[type=' + clip(type, 20) + ']';
  const buttonLike = tag === 'input' && /^(button|submit|reset|image)$/.test(type);
  const field =
    (tag === 'input' && !buttonLike) || tag === 'textarea' || tag === 'select' || tag === 'option' || tag === 'label' ||
    (el instanceof HTMLElement && el.isContentEditable);
  // Form controls never describe their value (an input's value is the
  // visitor's); other elements give their visible text.
  if (tag !== 'input' && tag !== 'textarea' && tag !== 'select') {
    let text = (el.textContent || '').replace(/\s+/g, ' ').trim();
    if (!text) text = (el.getAttribute('aria-label') || el.getAttribute('title') || '').trim();
    if (text) {
      text = clip(text, MAX_TEXT);
      if (masked(el, opts)) text = text.replace(/[^\s]/g, '*');
      s += ' "' + text + '"';
    }
  }
  let submit = false;
  if (tag === 'button') {
    submit = (type === '' || type === 'submit') && !!(el as HTMLButtonElement).form;
  } else if (tag === 'input') {
    submit = (type === 'submit' || type === 'image') && !!(el as HTMLInputElement).form;
  }
  return { target: s, field, submit };
}

function masked(el: Element, opts: ClickOptions): boolean {
  try {
    if (el.closest('.rr-mask,.rr-block')) return true;
    if (opts.mask && el.closest(opts.mask)) return true;
    if (opts.block && el.closest(opts.block)) return true;
    // Text below the element that is masked masks it too.
    if (opts.mask && el.querySelector(opts.mask)) return true;
    if (el.querySelector('.rr-mask,.rr-block')) return true;
  } catch {
    return true; // a selector the browser refuses: mask rather than leak
  }
  return false;
}

/** watchSignals adds Loupe's custom events; it returns a stop function. */
export function watchSignals(ingest: string, opts: ClickOptions): () => void {
  const onClick = (e: MouseEvent) => {
    try {
      const t = e.target;
      if (!(t instanceof Element)) return;
      const d = describe(t, opts);
      record.addCustomEvent(CLICK_TAG, { node: record.mirror.getId(t), x: Math.round(e.clientX), y: Math.round(e.clientY), ...d });
    } catch {
      // never into the page
    }
  };
  // Registered after record(): rrweb's own click event comes first.
  document.addEventListener('click', onClick, true);

  let po: PerformanceObserver | undefined;
  try {
    const ingestPath = new URL(ingest, location.href).pathname;
    po = new PerformanceObserver((list) => {
      try {
        for (const en of list.getEntries() as PerformanceResourceTiming[]) {
          if (en.initiatorType !== 'fetch' && en.initiatorType !== 'xmlhttprequest') continue;
          if (en.name.indexOf(ingestPath) >= 0) continue; // our own uploads
          record.addCustomEvent(REQUEST_TAG, { start: Math.round(performance.timeOrigin + en.startTime) });
        }
      } catch {
        // never into the page
      }
    });
    po.observe({ type: 'resource' });
  } catch {
    po = undefined; // no Resource Timing: no request evidence
  }
  return () => {
    document.removeEventListener('click', onClick, true);
    if (po) po.disconnect();
  };
}

/** pageHidden records that the page is being left. */
export function pageHidden(): void {
  try {
    record.addCustomEvent(PAGEHIDE_TAG, {});
  } catch {
    // never into the page
  }
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}
