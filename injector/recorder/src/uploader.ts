// Batching and delivery of rrweb events to the collector.
//
// Wire format, version 1: POST to the ingest URL with the JSON body
//
//   {"v":1, "token":"<from the config>", "pv":"<page view id>", "seq":N,
//    "page":{"referrer":"…","language":"…","tab":"…"},   (first batch only)
//    "events":[<rrweb events>]}
//
// pv is made by the recorder for each document it runs in, not taken from
// the tag: a page restored from the browser's cache carries the tag (and the
// proxy's page-view id) of an earlier load, and its batches must not collide
// with that load's seq numbers.
//
// seq numbers the batches of one page view from 0 up, in the order their
// events were recorded; "page" rides on seq 0 (or, if seq 0 was refused as
// too large, on the first half it was split into). A retry keeps its seq so
// the collector can drop a copy it already stored. Batches are sent one at
// a time, oldest first. The body is gzipped (Content-Encoding: gzip) where
// the browser has CompressionStream, and plain JSON otherwise.
//
// Answers: 2xx stored (or a duplicate): done. 400 malformed: dropped.
// 401/403 token refused or session over its limits: every batch under that
// token is dropped, and if it is this page's, recording stops. 413 too
// large: split in halves, each under a new seq, and resent; a lone event is
// dropped. 429 and 503 wait Retry-After; network errors, timeouts and other
// 5xx back off exponentially (1 s doubling to 30 s, with jitter), for as
// long as the page lives.
//
// Offline queue. Each batch is written to sessionStorage (per tab and
// origin) when it is cut, under its token, pv and seq, and removed once
// acknowledged. A recorder starting in the same tab resends what it finds
// there, before its own batches: so a navigation during an outage, or a
// page left while its batches wait, loses nothing as long as the visitor
// stays on the site. The store is bounded (STORE_CHARS; the oldest go
// first, and a batch bigger than the bound is kept in memory only).
//
// On pagehide the unsent batches are also handed to sendBeacon, which
// cannot report whether they were stored; their persisted copies stay, and
// the next page resends them under the same pv and seq, which the collector
// stores once. The price is one duplicate request per batch beaconed when
// the visitor moves to another page of the site; the gain is that a beacon
// lost in a failed network costs nothing. Only batches that fit a beacon
// (64 KiB in flight per page) are beaconed, in order per page view, so what
// does arrive by beacon is a prefix.

import { utf8Len } from './split';

/** Page facts sent with a page view's first batch. */
export interface Page {
  referrer: string;
  language: string;
  /** The browser tab (tabID); absent when sessionStorage is unusable. */
  tab?: string;
}

/** Events are cut into a batch once their JSON exceeds this many bytes. */
const BATCH_BYTES = 512 * 1024;
/**
 * Upper bound of a keepalive or beacon body in bytes: browsers cap what such
 * requests may have in flight at 64 KiB (Fetch standard, "keepalive").
 */
const KEEPALIVE_BYTES = 60000;
/** Batches kept in memory while the collector is unreachable; oldest go first. */
const QUEUE_BYTES = 16 * 1024 * 1024;
/** Budget of the sessionStorage queue, in UTF-16 code units. */
const STORE_CHARS = 2 * 1024 * 1024;
/** Backoff: first wait and cap. */
const RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;
/** Longest Retry-After we honour, so one answer cannot park the queue. */
const MAX_RETRY_AFTER_MS = 600000;
/** A request with no answer after this long is retried. */
const TIMEOUT_MS = 60000;
/** sessionStorage keys: Q + pv:n:seq for batches, N + pv for the next seq, T the tab. */
const Q = 'loupe:q:';
const N = 'loupe:n:';
const T = 'loupe:tab';

interface Batch {
  /** Ingest URL, token, page view and seq it is sent under. */
  u: string;
  t: string;
  pv: string;
  s: number;
  /** Events, each already JSON-encoded (JSON text never holds a raw "\n"). */
  e: string[];
  /** Sum of the events' UTF-8 lengths plus commas. */
  c: number;
  p?: Page;
  /** Order: the page view's batch counter and when the batch was cut. */
  n: number;
  at: number;
  /** sessionStorage key and value length while persisted. */
  k?: string;
  kc?: number;
  /** Encoded body, kept for retries. */
  body?: Blob;
  gz?: boolean;
  /** A request for it is in flight. */
  fl?: boolean;
}

export class Uploader {
  private seq = 0;
  private n = 0;
  private buf: string[] = [];
  /** UTF-8 bytes of each buffered event plus its comma, as add measured it. */
  private bufLens: number[] = [];
  private bufBytes = 0;
  /** Unacknowledged batches, oldest first; q[0] is the one being sent. */
  private q: Batch[] = [];
  private qBytes = 0;
  private stored = 0;
  private busy = false;
  private timer = 0;
  private tries = 0;
  /** Set once the collector refused this page's token. */
  stopped = false;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly pv: string,
    private readonly page: Page,
    private readonly onStop: () => void,
  ) {
    this.load();
    this.pump();
  }

  /** add buffers JSON-encoded rrweb events, cutting a batch at the budget. */
  add(events: string[]): void {
    if (this.stopped) return;
    for (const s of events) {
      const n = utf8Len(s) + 1;
      if (this.buf.length && this.bufBytes + n > BATCH_BYTES) this.seal(BATCH_BYTES);
      this.buf.push(s);
      this.bufLens.push(n);
      this.bufBytes += n;
    }
    // Also true for a single event over budget: it travels alone.
    if (this.bufBytes >= BATCH_BYTES) this.flush();
  }

  /** flush sends whatever is buffered, behind any batch already queued. */
  flush(): void {
    this.seal(BATCH_BYTES);
    this.pump();
  }

  /** retry sends now a batch waiting for its next attempt (back online). */
  retry(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = 0;
      this.pump();
    }
  }

  /**
   * drain is for pagehide: it cuts what is buffered into beacon-sized
   * batches (persisted like any other) and hands the waiting batches to
   * sendBeacon, synchronously (compression would not finish), in order,
   * until one does not fit or is refused. A request in flight is left to
   * finish. Everything stays queued and persisted: see the file comment.
   */
  drain(): void {
    const room = KEEPALIVE_BYTES - 400 - utf8Len(this.token + JSON.stringify(this.page));
    this.seal(room);
    for (const b of this.q) {
      if (b.fl) continue;
      if (b.c > room) break;
      try {
        if (!navigator.sendBeacon(b.u, new Blob([this.json(b)], { type: 'application/json' }))) break;
      } catch {
        break;
      }
    }
  }

  /** seal cuts the buffer into batches of at most max bytes and queues them. */
  private seal(max: number): void {
    let i = 0;
    while (i < this.buf.length) {
      let j = i;
      let c = 0;
      while (j < this.buf.length) {
        const n = this.bufLens[j];
        if (j > i && c + n > max) break;
        c += n;
        j++;
      }
      const b: Batch = { u: this.url, t: this.token, pv: this.pv, s: this.seq++, e: this.buf.slice(i, j), c, n: this.n++, at: Date.now() };
      if (!b.s) b.p = this.page;
      this.q.push(b);
      this.qBytes += c;
      this.persist(b);
      i = j;
    }
    if (i) setItem(N + this.pv, String(this.seq));
    this.buf = [];
    this.bufLens = [];
    this.bufBytes = 0;
    // Memory bound: drop the oldest batches waiting behind the current one.
    while (this.qBytes > QUEUE_BYTES && this.q.length > 2) this.remove(this.q[1]);
  }

  /** pump sends the oldest batch unless one is in flight or waiting. */
  private pump(): void {
    if (this.busy || this.timer || !this.q.length) return;
    this.busy = true;
    void this.send(this.q[0]);
  }

  private async send(b: Batch): Promise<void> {
    let status = 0; // 0: network error or timeout
    let retryAfter = NaN;
    try {
      if (!b.body) {
        const enc = await encode(this.json(b));
        b.body = enc.body;
        b.gz = enc.gzip;
      }
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (b.gz) headers['Content-Encoding'] = 'gzip';
      const ac = typeof AbortController === 'function' ? new AbortController() : null;
      const t = setTimeout(() => ac && ac.abort(), TIMEOUT_MS);
      b.fl = true;
      try {
        const res = await fetch(b.u, {
          method: 'POST',
          body: b.body,
          keepalive: b.body.size < KEEPALIVE_BYTES,
          headers,
          signal: ac ? ac.signal : undefined,
        });
        status = res.status;
        retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
      } finally {
        clearTimeout(t);
      }
    } catch {
      // Offline, blocked, aborted: all retried.
    }
    b.fl = false;
    this.busy = false;
    try {
      this.answer(b, status, retryAfter);
    } catch {
      // never into the page
    }
  }

  private answer(b: Batch, status: number, retryAfter: number): void {
    if (status >= 200 && status < 300) {
      this.tries = 0;
      this.remove(b);
    } else if (status === 401 || status === 403) {
      this.tries = 0;
      for (const x of this.q.filter((x) => x.t === b.t)) this.remove(x);
      if (b.t === this.token && !this.stopped) {
        this.stopped = true;
        this.buf = [];
        this.bufLens = [];
        this.onStop();
      }
    } else if (status === 0 || status === 429 || status >= 500) {
      const d = Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** this.tries++);
      let wait = d / 2 + (Math.random() * d) / 2;
      if (retryAfter >= 0) wait = Math.min(retryAfter, MAX_RETRY_AFTER_MS) + Math.random() * 1000;
      this.timer = window.setTimeout(() => {
        this.timer = 0;
        this.pump();
      }, wait);
      return;
    } else if (status === 413 && b.e.length > 1) {
      // Two halves under new seqs, in b's place.
      const i = this.q.indexOf(b);
      if (i >= 0) {
        const h = b.e.length >> 1;
        const halves = [b.e.slice(0, h), b.e.slice(h)].map((e, k): Batch => {
          const c = e.reduce((a, s) => a + utf8Len(s) + 1, 0);
          return { ...b, s: this.nextSeq(b.pv), e, c, p: k ? undefined : b.p, k: undefined, body: undefined };
        });
        this.remove(b);
        this.q.splice(i, 0, ...halves);
        this.qBytes += b.c;
        halves.forEach((x) => this.persist(x));
      }
    } else {
      // 400, a lone event over 413, anything else: the batch cannot succeed.
      this.remove(b);
    }
    this.pump();
  }

  /** nextSeq takes a fresh seq of a page view, this one's or an earlier page's. */
  private nextSeq(pv: string): number {
    if (pv === this.pv) {
      setItem(N + pv, String(this.seq + 1));
      return this.seq++;
    }
    let s = parseInt(getItem(N + pv) ?? '', 10) || 0;
    for (const b of this.q) if (b.pv === pv && b.s >= s) s = b.s + 1;
    setItem(N + pv, String(s + 1));
    return s;
  }

  private remove(b: Batch): void {
    const i = this.q.indexOf(b);
    if (i < 0) return;
    this.q.splice(i, 1);
    this.qBytes -= b.c;
    if (b.k) {
      removeItem(b.k);
      this.stored -= b.kc!;
      b.k = undefined;
    }
  }

  /** persist writes b to sessionStorage, evicting the oldest to make room. */
  private persist(b: Batch): void {
    const { e, c, k, kc, body, gz, fl, ...head } = b;
    const v = JSON.stringify(head) + '\n' + e.join('\n');
    if (v.length > STORE_CHARS) return;
    const key = Q + b.pv + ':' + b.n + ':' + b.s;
    for (;;) {
      if (this.stored + v.length <= STORE_CHARS && setItem(key, v)) {
        b.k = key;
        b.kc = v.length;
        this.stored += v.length;
        return;
      }
      const old = this.q.find((x) => x.k && x !== b);
      if (!old) return;
      removeItem(old.k!);
      this.stored -= old.kc!;
      old.k = undefined;
    }
  }

  /** load queues the batches earlier pages of this tab left unacknowledged. */
  private load(): void {
    const st = storage();
    if (!st) return;
    const found: Batch[] = [];
    const seqs: string[] = [];
    for (let i = 0; i < st.length; i++) {
      const key = st.key(i);
      if (key && key.startsWith(N)) seqs.push(key);
      if (!key || !key.startsWith(Q)) continue;
      try {
        const v = st.getItem(key)!;
        const nl = v.indexOf('\n');
        const h = JSON.parse(v.slice(0, nl)) as Batch;
        const e = v.slice(nl + 1).split('\n');
        if (typeof h.u !== 'string' || typeof h.t !== 'string' || typeof h.pv !== 'string' || !(h.s >= 0) || !e[0]) {
          throw 0;
        }
        found.push({ ...h, e, c: e.reduce((a, s) => a + utf8Len(s) + 1, 0), k: key, kc: v.length });
      } catch {
        removeItem(key);
      }
    }
    // Page views in the order they began, each in its own order.
    const first: Record<string, number> = {};
    for (const b of found) first[b.pv] = Math.min(first[b.pv] ?? Infinity, b.at);
    found.sort((a, b) => (a.pv === b.pv ? a.n - b.n || a.s - b.s : first[a.pv] - first[b.pv] || (a.pv < b.pv ? -1 : 1)));
    for (const b of found) {
      this.q.push(b);
      this.qBytes += b.c;
      this.stored += b.kc!;
    }
    // Seq counters of page views with nothing left to send.
    for (const k of seqs) if (!(k.slice(N.length) in first)) removeItem(k);
  }

  private json(b: Batch): string {
    const page = b.p ? `"page":${JSON.stringify(b.p)},` : '';
    return `{"v":1,"token":${JSON.stringify(b.t)},"pv":${JSON.stringify(b.pv)},"seq":${b.s},${page}"events":[${b.e.join(',')}]}`;
  }
}

/** parseRetryAfter returns Retry-After in ms (seconds or an HTTP date), or NaN. */
function parseRetryAfter(h: string | null): number {
  if (!h) return NaN;
  const s = Number(h);
  if (h.trim() && s >= 0) return s * 1000;
  return Date.parse(h) - Date.now();
}

async function encode(json: string): Promise<{ body: Blob; gzip: boolean }> {
  const plain = new Blob([json], { type: 'application/json' });
  if (typeof CompressionStream === 'function') {
    try {
      const gz = plain.stream().pipeThrough(new CompressionStream('gzip'));
      return { body: await new Response(gz).blob(), gzip: true };
    } catch {
      // fall back to plain JSON
    }
  }
  return { body: plain, gzip: false };
}

// sessionStorage can be missing or throw (sandboxed frames, storage
// disabled, quota): every access is guarded, and the queue then lives in
// memory only.

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/**
 * tabID names this browser tab, the same for every page of the site the tab
 * shows (sessionStorage is per tab and origin): the collector ends a page
 * view's unfinished business only when a later page starts in the same
 * tab. undefined when sessionStorage is unusable.
 */
export function tabID(newID: () => string): string | undefined {
  const t = getItem(T);
  if (t && /^[0-9a-f]{32}$/.test(t)) return t;
  const id = newID();
  return setItem(T, id) ? id : undefined;
}

function getItem(k: string): string | null {
  try {
    return storage()!.getItem(k);
  } catch {
    return null;
  }
}

function setItem(k: string, v: string): boolean {
  try {
    storage()!.setItem(k, v);
    return true;
  } catch {
    return false;
  }
}

function removeItem(k: string): void {
  try {
    storage()!.removeItem(k);
  } catch {
    // nothing to do
  }
}
