// The replay server's JSON API, same origin.

/** SignalCounts is a session's "signals" object: counts per signal kind. */
export interface SignalCounts {
  rage_click?: number;
  dead_click?: number;
  error_click?: number;
  js_error?: number;
  server_error?: number;
  form_abandon?: number;
  [kind: string]: number | undefined;
}

/** Session is one row of GET /api/sessions, and GET /api/sessions/{id}. */
export interface Session {
  id: string;
  /** RFC 3339. */
  started_at: string;
  ended_at: string;
  duration_ms: number;
  page_count: number;
  click_count: number;
  event_count: number;
  entry_url: string;
  user_agent: string;
  // Enrichment (issue 5). Empty strings and zeros mean unknown.
  input_count?: number;
  error_count?: number;
  browser?: string;
  browser_version?: string;
  os?: string;
  device?: string;
  country?: string;
  language?: string;
  viewport_width?: number;
  viewport_height?: number;
  referrer?: string;
  utm_source?: string;
  utm_medium?: string;
  utm_campaign?: string;
  // Signals (issue 6).
  signals?: SignalCounts;
  friction?: number;
  user_id?: string;
  exit_url?: string;
  converted?: boolean;
  tags?: string[];
}

/** SessionPage is one page of GET /api/sessions. next, when set, fetches the following page. */
export interface SessionPage {
  sessions: Session[];
  /** Opaque: a cursor, an offset or a query string, depending on the server. */
  next?: string | number | null;
  total?: number;
}

/**
 * TimelineEntry is one item of GET /api/sessions/{id}/timeline. at_ms is
 * milliseconds since the session's start (its first event).
 */
export interface TimelineEntry {
  kind: string;
  at_ms: number;
  page?: string;
  target?: string;
  message?: string;
  detail?: string;
  status?: number;
  method?: string;
  url?: string;
  duration_ms?: number;
  x?: number;
  y?: number;
}

/** NetRequest is one request of the proxy's log, normalised from GET /api/sessions/{id}/requests. */
export interface NetRequest {
  /** ms since the session's start. */
  at_ms: number;
  method: string;
  url: string;
  /** 0 when the request failed without a response. */
  status: number;
  duration_ms: number;
  bytes: number;
}

export interface Note {
  id: string;
  at_ms: number | null;
  text: string;
  /** The user who wrote it; "" for notes from before logins. */
  author?: string;
  created_at?: string;
}

/** Account is the signed-in user, as the server wrote it on the page. */
export interface Account {
  name: string;
  /** viewer, editor or admin. */
  role: string;
}

export function account(): Account {
  const d = document.getElementById('app')?.dataset;
  return { name: d?.user ?? '', role: d?.role ?? 'viewer' };
}

/** canEdit: the role writes tags and notes. */
export const canEdit = (a: Account) => a.role === 'editor' || a.role === 'admin';

/** canDeleteNote: admins delete any note, editors their own. */
export const canDeleteNote = (a: Account, n: Note) => a.role === 'admin' || (a.role === 'editor' && n.author === a.name);

/** User is one row of GET /api/users (admins only). */
export interface User {
  name: string;
  role: string;
  created_at: string;
}

export const listUsers = () => getJSON<User[]>('/api/users');
export const addUser = (name: string, role: string, password: string) => call<User>('POST', '/api/users', { name, role, password });
export const updateUser = (name: string, change: { role?: string; password?: string }) =>
  call<User>('PATCH', `/api/users/${encodeURIComponent(name)}`, change);
export const deleteUser = (name: string) => call<unknown>('DELETE', `/api/users/${encodeURIComponent(name)}`);
/** changePassword changes the signed-in user's password; the server renews the login. */
export const changePassword = (old: string, next: string) => call<unknown>('PUT', '/api/me/password', { old, new: next });

/** RRwebEvent is the envelope every rrweb event shares. */
export interface RRwebEvent {
  type: number;
  data: unknown;
  timestamp: number;
}

/** APIError carries the HTTP status beside the server's safe message. */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** failure is the APIError of a response that is not ok, with the server's safe message. */
async function failure(res: Response): Promise<APIError> {
  if (res.status === 401) {
    // The login ended (expired, signed out elsewhere): sign in again and come back.
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
  }
  let msg = `${res.status} ${res.statusText}`.trim();
  try {
    const b = (await res.json()) as { error?: unknown };
    if (typeof b.error === 'string' && b.error) msg = b.error;
  } catch {
    // not JSON: keep the status line
  }
  return new APIError(msg, res.status);
}

/** call fetches url and parses JSON, throwing the server's safe message on failure. */
async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  let res: Response;
  const init: RequestInit = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
  }
  try {
    res = await fetch(url, init);
  } catch {
    throw new APIError('The replay server did not answer.', 0);
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    // The server streams events and can only cut the body short on failure.
    throw new APIError('The server sent an incomplete answer.', res.status);
  }
}

export const getJSON = <T>(url: string) => call<T>('GET', url);

const base = (id: string) => `/api/sessions/${encodeURIComponent(id)}`;

/** listSessions asks for one page of sessions; query holds the list's filters as API parameters. */
export async function listSessions(query: URLSearchParams): Promise<SessionPage> {
  const qs = query.toString();
  const r = await getJSON<SessionPage>('/api/sessions' + (qs ? '?' + qs : ''));
  return { ...r, sessions: r?.sessions ?? [] };
}

export const session = (id: string) => getJSON<Session>(base(id));
/**
 * streamEvents reads a session's events as they arrive: onEvents gets each
 * run of complete events, in order, so that a replay can start before the
 * last of a long session is in. It resolves once all are in.
 */
export async function streamEvents(id: string, onEvents: (evs: RRwebEvent[]) => void): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base(id)}/events`, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  } catch {
    throw new APIError('The replay server did not answer.', 0);
  }
  if (!res.ok) throw await failure(res);
  const split = new ArraySplitter();
  const incomplete = () => new APIError('The server sent an incomplete answer.', res.status);
  if (!res.body) {
    onEvents(split.push(await res.text()).map((t) => JSON.parse(t) as RRwebEvent));
  } else {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch {
        throw incomplete(); // the server cut the body short
      }
      if (chunk.done) break;
      const parts = split.push(chunk.value);
      if (parts.length) onEvents(JSON.parse('[' + parts.join(',') + ']') as RRwebEvent[]);
    }
  }
  if (!split.ended) throw incomplete();
}

/**
 * ArraySplitter cuts the text of one JSON array, given in pieces, into the
 * texts of its elements as each completes. It only tracks nesting and
 * strings; JSON.parse checks the elements.
 */
export class ArraySplitter {
  /** ended: the array's closing bracket has been read. */
  ended = false;
  private started = false;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inElement = false;
  private pending = ''; // the current element's text from earlier pieces

  push(piece: string): string[] {
    const out: string[] = [];
    let from = this.inElement ? 0 : -1; // where the current element starts in piece
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true; // backslash
        else if (c === 0x22) this.inString = false; // quote
        continue;
      }
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      if (this.ended) throw new APIError('The server sent text after the events.', 0);
      if (!this.started) {
        if (c !== 0x5b) throw new APIError('The server sent no list of events.', 0);
        this.started = true;
        continue;
      }
      if (this.depth === 0 && (c === 0x2c || c === 0x5d)) {
        // A comma or the closing bracket at the top ends the element.
        if (this.inElement) out.push((this.pending + piece.slice(from, i)).trim());
        this.pending = '';
        this.inElement = false;
        from = -1;
        if (c === 0x5d) this.ended = true;
        continue;
      }
      if (!this.inElement) {
        this.inElement = true;
        from = i;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth++;
      else if (c === 0x7d || c === 0x5d) this.depth--;
    }
    if (this.inElement) this.pending += piece.slice(from);
    return out;
  }
}

/** unwrap accepts either a bare array or an object holding it under key. */
function unwrap<T>(v: unknown, key: string): T[] {
  if (Array.isArray(v)) return v as T[];
  if (v && typeof v === 'object') {
    const inner = (v as Record<string, unknown>)[key];
    if (Array.isArray(inner)) return inner as T[];
  }
  return [];
}

export async function timeline(id: string): Promise<TimelineEntry[]> {
  const list = unwrap<TimelineEntry>(await getJSON<unknown>(`${base(id)}/timeline`), 'timeline');
  return list.filter((e) => e && typeof e.kind === 'string' && Number.isFinite(e.at_ms)).sort((a, b) => a.at_ms - b.at_ms);
}

/** msOf reads a time given as Unix ms or RFC 3339. */
function msOf(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const n = Date.parse(v);
    if (!isNaN(n)) return n;
  }
  return NaN;
}

/**
 * requests lists the proxy's log of the session's requests. startMs is the
 * session's start (Unix ms), for rows that give an absolute time.
 */
export async function requests(id: string, startMs: number): Promise<NetRequest[]> {
  const rows = unwrap<Record<string, unknown>>(await getJSON<unknown>(`${base(id)}/requests`), 'requests');
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return rows
    .map((r) => {
      let at = typeof r.at_ms === 'number' ? r.at_ms : NaN;
      // A Unix time (after 2001) rather than an offset from the start.
      if (at > 1e12) at -= startMs;
      if (!Number.isFinite(at)) at = msOf(r.at ?? r.time ?? r.started_at) - startMs;
      return {
        at_ms: Number.isFinite(at) ? Math.max(0, at) : 0,
        method: String(r.method ?? ''),
        url: String(r.url ?? r.path ?? ''),
        status: num(r.status),
        duration_ms: num(r.duration_ms),
        bytes: num(r.bytes),
      };
    })
    .sort((a, b) => a.at_ms - b.at_ms);
}

export const tags = async (id: string) =>
  unwrap<string>(await getJSON<unknown>(`${base(id)}/tags`), 'tags').filter((t) => typeof t === 'string');
export const setTags = async (id: string, list: string[]) =>
  unwrap<string>(await call<unknown>('PUT', `${base(id)}/tags`, list), 'tags');

function toNote(v: Record<string, unknown>): Note {
  return {
    id: String(v.id ?? ''),
    at_ms: typeof v.at_ms === 'number' ? v.at_ms : null,
    text: String(v.text ?? ''),
    author: typeof v.author === 'string' ? v.author : '',
    created_at: typeof v.created_at === 'string' ? v.created_at : undefined,
  };
}

export const notes = async (id: string) =>
  unwrap<Record<string, unknown>>(await getJSON<unknown>(`${base(id)}/notes`), 'notes').map(toNote);
export const addNote = (id: string, text: string, atMs: number | null) =>
  call<unknown>('POST', `${base(id)}/notes`, { text, at_ms: atMs });
export const deleteNote = (id: string, note: string) =>
  call<unknown>('DELETE', `${base(id)}/notes/${encodeURIComponent(note)}`);
