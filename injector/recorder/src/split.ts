// Splitting of oversized mutation events.
//
// One DOM mutation burst is one rrweb event: 20,000 appended nodes make an
// event of about 4 MB, which the collector refuses. An IncrementalSnapshot
// Mutation event is a list of operations that the replayer (applyMutation in
// @rrweb/replay) applies in a fixed order: removes, then adds, then texts,
// then attributes. So the operations, taken in that order, can be cut into
// consecutive slices, each a mutation event with the same timestamp, and
// replaying the slices one after the other does what the whole event did:
//
//  - removes come first in any case;
//  - adds are serialized by the recorder (MutationBuffer.emit) parent first
//    and, among siblings, the next sibling before the node, so every add's
//    parentId and nextId name a node that is already in the DOM or is added
//    earlier in the list, hence in the same slice or an earlier one (the
//    replayer queues an add whose parent or next sibling it does not know
//    yet, but only until the end of that one event);
//  - texts and attributes name nodes that existed before the burst (the
//    recorder filters out those it adds), applied after all the adds.
//
// Other oversized events (a huge full snapshot) are sent whole.

/** Largest event sent whole, in UTF-8 bytes of its JSON. */
export const MAX_EVENT_BYTES = 1 << 20;

const INCREMENTAL = 3;
const MUTATION = 0;
/** In the replayer's order of application. */
const PARTS = ['removes', 'adds', 'texts', 'attributes'] as const;

/** encodeEvent returns the event as one JSON text, or several slices. */
export function encodeEvent(e: unknown, max = MAX_EVENT_BYTES): string[] {
  const s = JSON.stringify(e);
  if (s.length * 3 <= max || utf8Len(s) <= max) return [s];
  const ev = e as { type?: unknown; data?: Record<string, unknown> };
  const d = ev.data;
  if (ev.type !== INCREMENTAL || !d || d.source !== MUTATION) return [s];
  // Everything but the data, e.g. {"type":3,"data":0,"timestamp":…}, and
  // the data's other keys ("source", "isAttachIframe"…).
  const rest: Record<string, unknown> = {};
  for (const k in d) if (!(PARTS as readonly string[]).includes(k)) rest[k] = d[k];
  const head = JSON.stringify(rest).slice(0, -1);
  const env = JSON.stringify({ ...ev, data: 0 });
  const room = max - utf8Len(head) - utf8Len(env) - 64;

  const out: string[] = [];
  let slice: string[][] = [[], [], [], []];
  let size = 0;
  const cut = () => {
    const body = PARTS.map((p, i) => `"${p}":[${slice[i].join(',')}]`).join(',');
    const data = head + (head.length > 1 ? ',' : '') + body + '}';
    out.push(env.replace('"data":0', () => '"data":' + data));
    slice = [[], [], [], []];
    size = 0;
  };
  PARTS.forEach((p, i) => {
    const list = d[p];
    if (!Array.isArray(list)) return;
    for (const x of list) {
      const j = JSON.stringify(x);
      const n = utf8Len(j) + 1;
      // An operation bigger than a slice travels alone.
      if (size && size + n > room) cut();
      slice[i].push(j);
      size += n;
    }
  });
  if (size || !out.length) cut();
  return out;
}

/** utf8Len is the UTF-8 byte length of s (a surrogate pair counts 4). */
export function utf8Len(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}
