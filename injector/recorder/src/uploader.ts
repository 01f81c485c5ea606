// Batching and delivery of rrweb events to the collector.
//
// Wire format, version 1: POST to the ingest URL with the JSON body
//
//   {"v":1, "token":"<from the config>", "pv":"<page view id>", "seq":N,
//    "events":[<rrweb events>]}
//
// pv is made by the recorder for each document it runs in, not taken from
// the tag: a page restored from the browser's cache carries the tag (and the
// proxy's page-view id) of an earlier load, and its batches must not collide
// with that load's seq numbers.
//
// seq numbers the batches of one page view from 0 up, in the order their
// events were recorded. A retry keeps its seq so the collector can drop a
// copy it already stored. seq is given to a batch when it is first sent, so
// batches dropped unsent leave no gap; a batch dropped after failed attempts
// does. The body is gzipped (Content-Encoding: gzip) where the browser has
// CompressionStream, and plain JSON otherwise.

/** Events are cut into a batch once their JSON exceeds this many chars. */
const BATCH_CHARS = 512 * 1024;
/**
 * Upper bound of a keepalive or beacon body in bytes: browsers cap what such
 * requests may have in flight at 64 KiB (Fetch standard, "keepalive").
 */
const KEEPALIVE_BYTES = 60000;
/** Unsent batches kept while the collector is unreachable; oldest go first. */
const QUEUE_CHARS = 8 * 1024 * 1024;
/** Waits before each retry; after the last one the batch is dropped. */
const RETRY_MS = [1000, 2000, 4000, 8000, 16000];
/** Longest Retry-After we honour, so one answer cannot park the queue. */
const MAX_RETRY_AFTER_MS = 60000;

interface Batch {
  /** Events, each already JSON-encoded. */
  events: string[];
  /** Sum of the events' lengths, in UTF-16 code units. */
  chars: number;
  /** -1 until first sent. */
  seq: number;
  /** Failed attempts so far. */
  tries: number;
  /** Encoded body, kept for retries. */
  body?: Blob;
  gzip?: boolean;
  /** A request for it is in flight (compression done, fetch called). */
  inflight?: boolean;
}

export class Uploader {
  private seq = 0;
  private buf: string[] = [];
  private bufChars = 0;
  private queue: Batch[] = [];
  private queuedChars = 0;
  /** The batch in flight or waiting to be retried; later ones wait behind it. */
  private current: Batch | null = null;
  private retryTimer = 0;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly pv: string,
  ) {}

  /** add buffers one rrweb event, cutting a batch when the budget is reached. */
  add(event: unknown): void {
    const s = JSON.stringify(event);
    if (this.buf.length && this.bufChars + s.length > BATCH_CHARS) this.seal();
    this.buf.push(s);
    this.bufChars += s.length + 1;
    // Also true for a single event over budget: it travels alone.
    if (this.bufChars >= BATCH_CHARS) this.flush();
  }

  /** flush sends whatever is buffered, behind any batch already queued. */
  flush(): void {
    this.seal();
    this.pump();
  }

  /**
   * drain hands everything not yet sent to sendBeacon, synchronously, for
   * pagehide: compression is asynchronous and would not finish, so beacons
   * carry plain JSON. A request already in flight is left alone: it either
   * completes (keepalive) or is cancelled with the page, and resending it
   * could store its events twice.
   */
  drain(): void {
    this.seal();
    const b = this.current;
    let ok = true;
    if (b && !b.inflight) {
      // Being compressed or waiting for a retry: send it now, under its
      // seq if it fits.
      clearTimeout(this.retryTimer);
      this.current = null;
      ok = this.beacons(b.events, b.seq);
    }
    const rest = ([] as string[]).concat(...this.queue.map((q) => q.events));
    this.queue = [];
    this.queuedChars = 0;
    if (ok) this.beacons(rest, -1);
  }

  private seal(): void {
    if (!this.buf.length) return;
    this.queue.push({ events: this.buf, chars: this.bufChars, seq: -1, tries: 0 });
    this.queuedChars += this.bufChars;
    this.buf = [];
    this.bufChars = 0;
    while (this.queuedChars > QUEUE_CHARS && this.queue.length > 1) {
      this.queuedChars -= this.queue.shift()!.chars;
    }
  }

  /** pump starts the next batch unless one is in flight or waiting. */
  private pump(): void {
    if (this.current) return;
    const b = this.queue.shift();
    if (!b) return;
    this.queuedChars -= b.chars;
    b.seq = this.seq++;
    this.current = b;
    void this.attempt(b);
  }

  private async attempt(b: Batch): Promise<void> {
    let status = 0; // 0: network error
    let retryAfter = NaN;
    try {
      if (!b.body) {
        const enc = await encode(this.json(b.seq, b.events));
        b.body = enc.body;
        b.gzip = enc.gzip;
      }
      // Drained by pagehide while compressing: the beacon has it.
      if (this.current !== b) return;
      b.inflight = true;
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (b.gzip) headers['Content-Encoding'] = 'gzip';
      const res = await fetch(this.url, {
        method: 'POST',
        body: b.body,
        keepalive: b.body.size < KEEPALIVE_BYTES,
        headers,
      });
      status = res.status;
      retryAfter = parseFloat(res.headers.get('Retry-After') ?? '');
    } catch {
      // Offline, blocked, aborted: all retried.
    }
    b.inflight = false;
    if (this.current !== b) return; // stopped meanwhile
    const retryable = status === 0 || status === 429 || status >= 500;
    if (retryable && b.tries < RETRY_MS.length) {
      let wait = RETRY_MS[b.tries++];
      if (status === 429 && retryAfter >= 0) {
        wait = Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS);
      }
      this.retryTimer = window.setTimeout(() => {
        if (this.current === b) void this.attempt(b);
      }, wait);
      return;
    }
    // Stored, refused (4xx other than 429) or out of retries.
    this.current = null;
    this.pump();
  }

  /**
   * beacons sends events in bodies of at most KEEPALIVE_BYTES. seq >= 0 is
   * reused when everything fits in one body; otherwise each body takes a new
   * seq. An event too big for any beacon is still tried alone.
   *
   * Beacons and keepalive fetches share one 64 KiB in-flight quota per page
   * in Chromium, so later bodies are often refused. After the first refusal
   * the rest is dropped: the collector keeps a prefix of the page's events
   * rather than a prefix, a hole, then a tail that refers to lost nodes.
   */
  private beacons(events: string[], seq: number): boolean {
    if (!events.length) return true;
    const room = KEEPALIVE_BYTES - utf8Len(this.json(1e9, []));
    const sizes = events.map((e) => utf8Len(e) + 1);
    if (seq >= 0 && sizes.reduce((a, n) => a + n, 0) <= room) {
      return this.beacon(seq, events);
    }
    let start = 0;
    let size = 0;
    for (let i = 0; i < events.length; i++) {
      if (i > start && size + sizes[i] > room) {
        if (!this.beacon(this.seq++, events.slice(start, i))) return false;
        start = i;
        size = 0;
      }
      size += sizes[i];
    }
    return this.beacon(this.seq++, events.slice(start));
  }

  /** beacon sends one body and reports whether sendBeacon accepted it. */
  private beacon(seq: number, events: string[]): boolean {
    const json = this.json(seq, events);
    try {
      if (navigator.sendBeacon(this.url, new Blob([json], { type: 'application/json' }))) return true;
    } catch {
      // fall through
    }
    // sendBeacon refuses bodies over its quota; fetch may still take it.
    try {
      fetch(this.url, {
        method: 'POST',
        body: json,
        keepalive: true,
        headers: { 'Content-Type': 'application/json' },
      }).catch(() => {});
    } catch {
      // keepalive quota exceeded: the events are lost.
    }
    return false;
  }

  private json(seq: number, events: string[]): string {
    return `{"v":1,"token":${JSON.stringify(this.token)},"pv":"${this.pv}","seq":${seq},"events":[${events.join(',')}]}`;
  }
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

/** utf8Len is the UTF-8 byte length of s (a surrogate pair counts 4). */
function utf8Len(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}
