// The player page: one session's facts, its replay in rrweb-player, a
// timeline of what happened, and panels for events, console errors, the
// network log and notes.
//
// rrweb's replayer rebuilds the page in an <iframe sandbox="allow-same-origin">
// without allow-scripts, and turns recorded <script>s into <noscript>: no
// recorded script ever runs. Keep it that way: no insertStyleRules or
// plugins that would inject markup from the recording.

import rrwebPlayer from 'rrweb-player';
import {
  streamEvents,
  requests as fetchRequests,
  session as fetchSession,
  timeline as fetchTimeline,
  type NetRequest,
  type RRwebEvent,
  type Session,
  type TimelineEntry,
} from './api';
import { h, mount, notice, topBar } from './dom';
import { duration, path, when } from './format';
import { badges } from './sessions';
import { ERROR_KINDS, MARKER_KINDS, PROBLEM_KINDS, frictionParts, signalLabel } from './signals';
import { notesPanel, tagEditor } from './annotations';
import { bindKeys, helpOverlay } from './keys';

declare global {
  interface Window {
    /** The player instance, for end-to-end tests. */
    loupePlayer?: rrwebPlayer;
  }
}

/** Height of rrweb-player's controller bar, in CSS pixels (its style.css). */
const CONTROLLER_PX = 80;

const EVENT_FULL_SNAPSHOT = 2;
const EVENT_INCREMENTAL = 3;
const EVENT_META = 4;
const EVENT_CUSTOM = 5;
const SOURCE_MOUSE = 2;
const MOUSE_CLICK = 2;

export const SPEEDS = [1, 2, 4, 8];

/** Item is one moment the page can show and seek to. */
export interface Item {
  kind: string;
  /** Player offset: ms from the first event. */
  at: number;
  title: string;
  detail: string;
}

/** Clock is the player's state as the page tracks it. */
export interface Clock {
  now(): number;
  playing(): boolean;
  total(): number;
  seek(ms: number): void;
}

export async function renderPlayer(root: HTMLElement, id: string, t: number | null): Promise<void> {
  const back = h('a', { class: 'topbar__back', href: '/' }, '← All sessions');
  const title = h('span', { class: 'topbar__title' }, 'Session ', h('code', {}, id));
  const main = h('main', { class: 'page page--player' }, notice('loading', 'Loading session…'));
  const tools = h('span', { class: 'topbar__meta' });
  mount(root, topBar(back, title, tools), main);

  let s: Session;
  // The events stream in: the replay starts once the first page snapshot
  // is in (a long session's first frame does not wait for its end), and
  // what arrives later goes to the player (onMore) as it comes.
  const evs: RRwebEvent[] = [];
  let complete = false;
  let onMore: ((batch: RRwebEvent[]) => void) | null = null;
  let snapshotIn!: () => void;
  const snapshot = new Promise<void>((resolve) => (snapshotIn = resolve));
  const loaded = streamEvents(id, (batch) => {
    for (const e of batch) evs.push(e);
    if (onMore) onMore(batch);
    else if (batch.some((e) => e.type === EVENT_FULL_SNAPSHOT)) snapshotIn();
  }).then(() => {
    complete = true;
  });
  let timelineP: Promise<Settled<TimelineEntry[]>>;
  let requestsP: Promise<Settled<NetRequest[]>>;
  try {
    // The timeline and the network log load beside the events.
    const sP = fetchSession(id);
    timelineP = settle(fetchTimeline(id));
    requestsP = settle(sP.then((x) => fetchRequests(id, Date.parse(x.started_at))));
    [s] = await Promise.all([sP, Promise.race([snapshot, loaded])]);
  } catch (err) {
    mount(main, notice('error', 'This session could not be loaded', h('p', {}, (err as Error).message)));
    return;
  }
  let ended = false; // the stream is over, whole or not
  const rest = settle(loaded).then((r) => {
    ended = true;
    return r;
  });

  const stage = h('div', { class: 'stage' });
  const bar = h('div', { class: 'timeline', 'aria-label': 'Timeline' });
  const side = h('aside', { class: 'side card' });
  const legend = h(
    'ul',
    { class: 'timeline-legend', 'aria-hidden': 'true' },
    ...(
      [
        ['page', 'Page'],
        ['click', 'Click'],
        ['rage_click', 'Rage click'],
        ['dead_click', 'Dead click'],
        ['error_click', 'Error click'],
        ['js_error', 'Error'],
        ['server_error', 'Failed request'],
        ['form_abandon', 'Form abandoned'],
      ] as const
    ).map(([k, label]) => h('li', {}, h('span', { class: `swatch marker--${k}` }), label)),
  );
  const left = h('div', { class: 'player-col' }, stage, bar, legend);
  mount(main, facts(s, id), h('div', { class: 'player-layout' }, left, side));

  if (evs.length < 2 && !complete) await rest; // the snapshot came alone
  if (evs.length < 2) {
    mount(stage, notice('empty', 'Nothing to replay', h('p', {}, 'This session has fewer than two recorded events.')));
    return;
  }
  if (!evs.some((e) => e.type === EVENT_FULL_SNAPSHOT)) {
    mount(
      stage,
      notice('empty', 'Nothing to replay', h('p', {}, 'No page snapshot was received for this session, so there is nothing to rebuild.')),
    );
    return;
  }

  const size = () => {
    const top = stage.getBoundingClientRect().top + window.scrollY;
    return {
      width: Math.max(320, Math.floor(stage.clientWidth)),
      height: Math.max(240, Math.floor(window.innerHeight - top - CONTROLLER_PX - 80)),
    };
  };

  let player: rrwebPlayer;
  try {
    player = new rrwebPlayer({
      target: stage,
      props: {
        // rrweb's eventWithTime is a union of every event shape; the API
        // hands back exactly what the recorder sent.
        events: evs.slice() as never,
        ...size(),
        // Until the last events are in, the player shows the first frame
        // (or t) and waits; playing past what is loaded would end early.
        autoPlay: t === null && complete,
        skipInactive: true,
        showController: true,
        speedOption: SPEEDS,
        // Marks JS errors on rrweb-player's own progress bar too.
        tags: { 'loupe.error': '#d6336c' },
      },
    });
  } catch (err) {
    mount(stage, notice('error', 'The replay could not start', h('p', {}, (err as Error).message)));
    return;
  }
  window.loupePlayer = player;
  onMore = (batch) => {
    // One meta update (the controller's length) per run of events.
    const r = player.getReplayer();
    batch.forEach((e, i) => (i === batch.length - 1 ? player.addEvent(e as never) : r.addEvent(e as never)));
  };
  if (t !== null) {
    // Seek once the events reach t.
    const first = evs[0].timestamp;
    while (!ended && evs[evs.length - 1].timestamp - first < t) {
      await Promise.race([rest, new Promise((r) => setTimeout(r, 50))]);
    }
  }

  const autoPlayed = t === null && complete;
  let current = t ?? 0;
  let state = autoPlayed ? 'playing' : 'paused';
  const clock: Clock = {
    now: () => current,
    playing: () => state === 'playing',
    total: () => player.getMetaData().totalTime,
    seek: (ms: number) => {
      const to = Math.max(0, Math.min(ms, clock.total()));
      current = to;
      player.goto(to);
      onTime(to);
    },
  };
  if (t !== null) {
    try {
      player.goto(t, false);
    } catch (err) {
      // A recording rrweb cannot rebuild; the panels are still worth having.
      console.warn('loupe: seek failed', err);
    }
  }

  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      // $set is Svelte's prop setter; the package's types omit it because
      // they refer to svelte's, which is not installed.
      (player as unknown as { $set(p: object): void }).$set(size());
      player.triggerResize();
    });
  });

  // The timeline's times count from the session's start, which is its
  // first event: the same origin as the player's. Should the two ever
  // differ, shift by the difference.
  const shift = Date.parse(s.started_at) - evs[0].timestamp;
  const toPlayer = (atMs: number) => Math.max(0, atMs + (Number.isFinite(shift) ? shift : 0));

  // Share link, help.
  const share = h('input', { class: 'share__url', type: 'text', readonly: '', 'aria-label': 'Link to this moment', value: shareURL(id, current) });
  const shareBtn = h('button', { type: 'button', class: 'btn', title: 'Copy a link to the current moment' }, 'Share this moment');
  shareBtn.addEventListener('click', async () => {
    share.value = shareURL(id, Math.round(current));
    share.hidden = false;
    share.select();
    try {
      await navigator.clipboard.writeText(share.value);
      shareBtn.textContent = 'Link copied';
    } catch {
      shareBtn.textContent = 'Copy the link';
    }
    setTimeout(() => (shareBtn.textContent = 'Share this moment'), 2000);
  });
  share.hidden = true;
  const help = helpOverlay();
  const helpBtn = h('button', { type: 'button', class: 'btn', title: 'Keyboard shortcuts (?)' }, '?');
  helpBtn.addEventListener('click', () => help.toggle());
  mount(tools, h('span', { class: 'share' }, share, shareBtn), helpBtn);
  document.body.append(help.el);

  // The panels read the whole recording.
  const loadingRest = notice('loading', 'Loading the rest of the session…');
  if (!ended) side.append(loadingRest);
  const got = await rest;
  loadingRest.remove();
  if (!got.ok) {
    stage.append(notice('error', 'The rest of this session could not be loaded', h('p', {}, got.error)));
  } else if (t === null && !autoPlayed) {
    player.play();
    state = 'playing';
  }

  // Timeline items: from the server when it has them, else from the
  // recording itself (pages, clicks, JS errors).
  let items: Item[] = [];
  let timelineNote: string | null = null;
  const tl = await timelineP;
  if (tl.ok) {
    items = tl.value.map((e) => toItem(e, toPlayer));
  } else {
    timelineNote = `The server's timeline is unavailable (${tl.error}); showing what the recording holds.`;
    items = fromRecording(evs);
  }
  const rq = await requestsP;
  const reqs = rq.ok ? rq.value : null;
  const reqErr = rq.ok ? '' : rq.error;

  const markers = drawTimeline(bar, items, clock);
  const list = eventsPanel(items, clock, timelineNote);
  const consoleList = consolePanel(items, evs, clock);
  const net = networkPanel(reqs, reqErr, toPlayer, clock);
  const notes = notesPanel(id, clock);
  side.append(tabs([
    ['events', `Events (${list.count})`, list.el],
    ['console', `Console (${consoleList.count})`, consoleList.el],
    ['network', `Network (${net.count})`, net.el],
    ['notes', 'Notes', notes],
  ]));

  function onTime(ms: number) {
    markers.at(ms);
    list.at(ms);
  }
  player.addEventListener('ui-update-current-time', (p) => {
    current = (p as { payload: number }).payload;
    onTime(current);
  });
  player.addEventListener('ui-update-player-state', (p) => {
    state = (p as { payload: string }).payload;
  });
  onTime(current);

  // Replaying a recorded focus event focuses an element inside the replay
  // iframe, and keys pressed there never reach this page: take focus back
  // so the shortcuts keep working.
  window.addEventListener('blur', () =>
    setTimeout(() => {
      const a = document.activeElement;
      if (a instanceof HTMLIFrameElement && stage.contains(a)) a.blur();
    }, 0),
  );

  bindKeys({
    toggle: () => player.toggle(),
    seekBy: (d) => clock.seek(clock.now() + d),
    speed: (n) => player.setSpeed(n),
    skip: () => player.toggleSkipInactive(),
    step: (dir, problemsOnly) => {
      const pool = items.filter((i) => !problemsOnly || PROBLEM_KINDS.has(i.kind));
      const now = clock.now();
      // A little slack so that "next" after a seek to an item moves on.
      const next = dir > 0 ? pool.find((i) => i.at > now + 50) : [...pool].reverse().find((i) => i.at < now - 50);
      if (next) clock.seek(next.at);
    },
    help,
  });
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: string };

/** settle turns a promise into its outcome, so that a failure waits to be looked at instead of going unhandled. */
function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, error: err instanceof Error ? err.message : String(err) }),
  );
}

function shareURL(id: string, ms: number): string {
  return `${location.origin}/sessions/${encodeURIComponent(id)}?t=${Math.max(0, Math.round(ms))}`;
}

function toItem(e: TimelineEntry, toPlayer: (ms: number) => number): Item {
  let detail = '';
  switch (e.kind) {
    case 'page':
      detail = path(e.page || e.url || '');
      break;
    case 'request':
    case 'server_error':
    case 'failed_request':
    case 'slow_request': {
      const st = e.status === 0 ? 'failed' : e.status ? String(e.status) : '';
      const took = typeof e.duration_ms === 'number' ? `${e.duration_ms} ms` : '';
      detail = [e.method, e.url ? path(e.url) : '', st, took].filter(Boolean).join(' ');
      if (!detail) detail = e.message || e.detail || '';
      break;
    }
    default:
      detail = [e.target, e.message || e.detail].filter(Boolean).join(' — ');
      if (!detail && e.page) detail = path(e.page);
  }
  return { kind: e.kind, at: toPlayer(e.at_ms), title: signalLabel(e.kind), detail };
}

/** fromRecording derives pages, clicks and JS errors from the rrweb events alone. */
function fromRecording(evs: RRwebEvent[]): Item[] {
  const start = evs[0].timestamp;
  const out: Item[] = [];
  for (const e of evs) {
    const at = Math.max(0, e.timestamp - start);
    const d = e.data as { href?: string; source?: number; type?: number; tag?: string; payload?: { message?: string } } | null;
    if (e.type === EVENT_META && d?.href) out.push({ kind: 'page', at, title: 'Page', detail: path(d.href) });
    else if (e.type === EVENT_INCREMENTAL && d?.source === SOURCE_MOUSE && d.type === MOUSE_CLICK)
      out.push({ kind: 'click', at, title: 'Click', detail: '' });
    else if (e.type === EVENT_CUSTOM && d?.tag === 'loupe.error')
      out.push({ kind: 'js_error', at, title: 'JS error', detail: d.payload?.message ?? '' });
  }
  return out;
}

function facts(s: Session, id: string): HTMLElement {
  const item = (label: string, value: Node | string | null | undefined, title?: string) =>
    value === null || value === undefined || value === ''
      ? null
      : h('div', { class: 'fact' }, h('dt', {}, label), h('dd', { title }, value));
  const vp = s.viewport_width && s.viewport_height ? `${s.viewport_width}×${s.viewport_height}` : '';
  const browser = s.browser ? `${s.browser}${s.browser_version ? ' ' + s.browser_version : ''}` : '';
  const signals = badges(s);
  return h(
    'section',
    { class: 'session-head' },
    h(
      'dl',
      { class: 'facts' },
      item('Started', when(s.started_at), s.started_at),
      item('Duration', duration(s.duration_ms)),
      item('Pages', String(s.page_count)),
      item('Clicks', String(s.click_count)),
      item('User', s.user_id),
      item('Browser', browser || s.user_agent, s.user_agent),
      item('OS', s.os),
      item('Device', s.device),
      item('Viewport', vp),
      item('Country', s.country),
      item('Referrer', s.referrer ? path(s.referrer) : s.utm_source ? `utm: ${s.utm_source}` : '', s.referrer),
      item('Entry page', path(s.entry_url), s.entry_url),
      item('Exit page', s.exit_url ? path(s.exit_url) : '', s.exit_url),
      item('Friction', typeof s.friction === 'number' ? String(Math.round(s.friction * 10) / 10) : '', frictionParts(s.signals, s.converted)),
      signals.childElementCount ? item('Signals', signals) : null,
    ),
    tagEditor(id, s.tags),
  );
}

/** drawTimeline draws markers on bar; at(ms) moves the playhead. */
function drawTimeline(bar: HTMLElement, items: Item[], clock: Clock): { at(ms: number): void } {
  const total = Math.max(1, clock.total());
  const head = h('div', { class: 'timeline__head' });
  const track = h('div', { class: 'timeline__track' });
  bar.replaceChildren(track, head);
  // Signals at about the same moment (an error click and its JS error)
  // take the second lane rather than hide each other.
  const lanes = [-Infinity, -Infinity];
  for (const it of items) {
    if (!MARKER_KINDS.has(it.kind)) continue;
    const pct = Math.min(100, (100 * it.at) / total);
    let lane = '';
    if (PROBLEM_KINDS.has(it.kind)) {
      const i = pct - lanes[0] >= 1.5 ? 0 : pct - lanes[1] >= 1.5 ? 1 : 0;
      lanes[i] = pct;
      lane = ` marker--problem marker--lane${i}`;
    }
    const m = h('button', {
      type: 'button',
      class: `marker marker--${it.kind}${lane}`,
      'data-kind': it.kind,
      'data-at': String(Math.round(it.at)),
      title: `${duration(it.at)} · ${it.title}${it.detail ? ': ' + it.detail : ''}`,
      'aria-label': `${it.title} at ${duration(it.at)}`,
    });
    // CSSOM, not a style attribute: the CSP forbids none of it, and it is
    // never parsed from a string.
    m.style.left = `${pct}%`;
    m.addEventListener('click', (e) => {
      e.stopPropagation();
      clock.seek(it.at);
    });
    bar.append(m);
  }
  bar.addEventListener('click', (e) => {
    const r = bar.getBoundingClientRect();
    if (r.width > 0) clock.seek(((e.clientX - r.left) / r.width) * total);
  });
  return {
    at(ms: number) {
      head.style.left = `${Math.min(100, Math.max(0, (100 * ms) / total))}%`;
    },
  };
}

function timeCell(at: number): HTMLElement {
  return h('span', { class: 'ev__time' }, duration(at));
}

/** eventsPanel lists every item; clicking one seeks there. at(ms) marks the past ones. */
function eventsPanel(items: Item[], clock: Clock, note: string | null) {
  const rows: [Item, HTMLElement][] = [];
  const ul = h('ul', { class: 'evlist' });
  for (const it of items) {
    const btn = h(
      'button',
      {
        type: 'button',
        class: `ev ev--${it.kind}${PROBLEM_KINDS.has(it.kind) ? ' ev--problem' : ''}`,
        'data-kind': it.kind,
        'data-at': String(Math.round(it.at)),
        title: 'Show this moment',
      },
      timeCell(it.at),
      h('span', { class: 'ev__kind' }, it.title),
      h('span', { class: 'ev__detail' }, it.detail),
    );
    btn.addEventListener('click', () => clock.seek(it.at));
    const li = h('li', {}, btn);
    rows.push([it, li]);
    ul.append(li);
  }
  const el = h(
    'div',
    { class: 'panel panel--events' },
    note ? h('p', { class: 'panel__note' }, note) : null,
    items.length ? ul : h('p', { class: 'panel__empty' }, 'No events.'),
  );
  let last = -1;
  return {
    el,
    count: items.length,
    at(ms: number) {
      // The latest item at or before ms is "current": a binary search, as
      // this runs on every frame of playback.
      let lo = 0;
      let hi = rows.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (rows[mid][0].at <= ms + 1) lo = mid + 1;
        else hi = mid;
      }
      const idx = lo - 1;
      if (idx === last) return;
      // Only the rows between the old and the new position change.
      for (let i = Math.min(idx, last) + 1; i <= Math.max(idx, last); i++) rows[i][1].classList.toggle('past', i <= idx);
      if (last >= 0) rows[last][1].classList.remove('current');
      if (idx >= 0) rows[idx][1].classList.add('current');
      last = idx;
    },
  };
}

interface LoupeError {
  message?: string;
  stack?: string;
  source?: string;
  line?: number;
  kind?: string;
}

/** consolePanel lists JS and console errors, with the stack when the recording has it. */
function consolePanel(items: Item[], evs: RRwebEvent[], clock: Clock) {
  const start = evs[0].timestamp;
  const recorded: { at: number; p: LoupeError }[] = [];
  for (const e of evs) {
    const d = e.data as { tag?: string; payload?: LoupeError } | null;
    if (e.type === EVENT_CUSTOM && d?.tag === 'loupe.error') recorded.push({ at: Math.max(0, e.timestamp - start), p: d.payload ?? {} });
  }
  const rows: HTMLElement[] = [];
  const used = new Set<number>();
  for (const it of items.filter((i) => ERROR_KINDS.has(i.kind))) {
    // Pair the server's entry with the recorded error for its stack.
    const i = recorded.findIndex((r, j) => !used.has(j) && Math.abs(r.at - it.at) < 50);
    if (i >= 0) used.add(i);
    rows.push(errorRow(it.at, it.title, it.detail, i >= 0 ? recorded[i].p : undefined, clock));
  }
  recorded.forEach((r, j) => {
    if (used.has(j)) return;
    const kind = r.p.kind === 'rejection' ? 'Unhandled rejection' : 'JS error';
    rows.push(errorRow(r.at, kind, r.p.message || '(no message)', r.p, clock));
  });
  rows.sort((a, b) => Number(a.dataset.at) - Number(b.dataset.at));
  const el = h(
    'div',
    { class: 'panel panel--console' },
    rows.length ? h('ul', { class: 'evlist' }, ...rows) : h('p', { class: 'panel__empty' }, 'No errors in this session.'),
  );
  return { el, count: rows.length };
}

function errorRow(at: number, kind: string, message: string, p: LoupeError | undefined, clock: Clock): HTMLElement {
  const where = p?.source ? `${path(p.source)}${p.line ? `:${p.line}` : ''}` : '';
  const btn = h(
    'button',
    { type: 'button', class: 'ev ev--problem err', title: 'Show this moment' },
    timeCell(at),
    h('span', { class: 'ev__kind' }, kind),
    h('span', { class: 'ev__detail' }, message || '(no message)'),
  );
  btn.addEventListener('click', () => clock.seek(at));
  return h(
    'li',
    { 'data-at': String(Math.round(at)) },
    btn,
    where ? h('div', { class: 'err__src' }, where) : null,
    p?.stack ? h('details', { class: 'err__stack' }, h('summary', {}, 'Stack'), h('pre', {}, p.stack)) : null,
  );
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** networkPanel shows the proxy's log of the session's requests. */
function networkPanel(reqs: NetRequest[] | null, err: string, toPlayer: (ms: number) => number, clock: Clock) {
  if (!reqs) {
    return {
      el: h('div', { class: 'panel panel--network' }, h('p', { class: 'panel__empty' }, `The network log is unavailable: ${err}`)),
      count: 0,
    };
  }
  const body = h('tbody', {});
  for (const r of reqs) {
    const failed = r.status === 0 || r.status >= 400;
    const at = toPlayer(r.at_ms);
    const row = h(
      'tr',
      { class: `req${failed ? ' req--failed' : ''}`, 'data-at': String(Math.round(at)), title: 'Show this moment' },
      h('td', { class: 'ev__time' }, duration(at)),
      h('td', {}, r.method),
      h('td', { class: 'req__url', title: r.url }, r.url),
      h('td', { class: 'num' }, r.status === 0 ? 'failed' : String(r.status)),
      h('td', { class: 'num' }, `${r.duration_ms} ms`),
      h('td', { class: 'num' }, bytes(r.bytes)),
    );
    row.addEventListener('click', () => clock.seek(at));
    body.append(row);
  }
  const th = (l: string, cls?: string) => h('th', { scope: 'col', class: cls }, l);
  const el = h(
    'div',
    { class: 'panel panel--network' },
    reqs.length
      ? h(
          'table',
          { class: 'reqs' },
          h('thead', {}, h('tr', {}, th('Time'), th('Method'), th('URL'), th('Status', 'num'), th('Duration', 'num'), th('Bytes', 'num'))),
          body,
        )
      : h('p', { class: 'panel__empty' }, 'No requests were logged for this session.'),
  );
  return { el, count: reqs.length };
}

/** tabs shows one panel at a time. */
function tabs(panels: [name: string, label: string, el: HTMLElement][]): HTMLElement {
  const bar = h('div', { class: 'side__tabs', role: 'tablist' });
  const wrap = h('div', { class: 'side__panels' });
  const buttons: HTMLButtonElement[] = [];
  panels.forEach(([name, label, el], i) => {
    const b = h('button', { type: 'button', role: 'tab', class: 'side__tab', 'data-tab': name, 'aria-selected': i === 0 ? 'true' : 'false' }, label);
    el.hidden = i !== 0;
    el.setAttribute('role', 'tabpanel');
    b.addEventListener('click', () => {
      panels.forEach(([, , p], j) => {
        p.hidden = j !== i;
        buttons[j].setAttribute('aria-selected', j === i ? 'true' : 'false');
      });
    });
    buttons.push(b);
    bar.append(b);
    wrap.append(el);
  });
  return h('div', { class: 'side__inner' }, bar, wrap);
}
