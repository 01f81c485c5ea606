// The replay server's JSON API, same origin.

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
}

/** RRwebEvent is the envelope every rrweb event shares. */
export interface RRwebEvent {
  type: number;
  data: unknown;
  timestamp: number;
}

/** getJSON fetches url and parses it, throwing the server's safe message on failure. */
export async function getJSON<T>(url: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  } catch {
    throw new Error('The replay server did not answer.');
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`.trim();
    try {
      const body = (await res.json()) as { error?: unknown };
      if (typeof body.error === 'string' && body.error) msg = body.error;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(msg);
  }
  try {
    return (await res.json()) as T;
  } catch {
    // The server streams events and can only cut the body short on failure.
    throw new Error('The server sent an incomplete answer.');
  }
}

export const sessions = () => getJSON<{ sessions: Session[] }>('/api/sessions').then((r) => r.sessions ?? []);
export const session = (id: string) => getJSON<Session>(`/api/sessions/${encodeURIComponent(id)}`);
export const events = (id: string) => getJSON<RRwebEvent[]>(`/api/sessions/${encodeURIComponent(id)}/events`);
