// The player page: one session's facts and its replay in rrweb-player.
//
// rrweb's replayer rebuilds the page in an <iframe sandbox="allow-same-origin">
// without allow-scripts, and turns recorded <script>s into <noscript>: no
// recorded script ever runs. Keep it that way: no insertStyleRules or
// plugins that would inject markup from the recording.

import rrwebPlayer from 'rrweb-player';
import { events as fetchEvents, session as fetchSession, type RRwebEvent, type Session } from './api';
import { h, mount, notice, topBar } from './dom';
import { browser, duration, path, when } from './format';

declare global {
  interface Window {
    /** The player instance, for end-to-end tests. */
    loupePlayer?: rrwebPlayer;
  }
}

/** Height of rrweb-player's controller bar, in CSS pixels (its style.css). */
const CONTROLLER_PX = 80;

const EVENT_FULL_SNAPSHOT = 2;
const EVENT_CUSTOM = 5;

export async function renderPlayer(root: HTMLElement, id: string, t: number | null): Promise<void> {
  const back = h('a', { class: 'topbar__back', href: '/' }, '← All sessions');
  const title = h('span', { class: 'topbar__title' }, 'Session ', h('code', {}, id));
  const main = h('main', { class: 'page page--player' }, notice('loading', 'Loading session…'));
  mount(root, topBar(back, title), main);

  let s: Session;
  let evs: RRwebEvent[];
  try {
    [s, evs] = await Promise.all([fetchSession(id), fetchEvents(id)]);
  } catch (err) {
    mount(main, notice('error', 'This session could not be loaded', h('p', {}, (err as Error).message)));
    return;
  }

  const stage = h('div', { class: 'stage' });
  mount(main, facts(s), stage);

  if (!Array.isArray(evs) || evs.length < 2) {
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
      height: Math.max(240, Math.floor(window.innerHeight - top - CONTROLLER_PX - 24)),
    };
  };

  let player: rrwebPlayer;
  try {
    player = new rrwebPlayer({
      target: stage,
      props: {
        // rrweb's eventWithTime is a union of every event shape; the API
        // hands back exactly what the recorder sent.
        events: evs as never,
        ...size(),
        autoPlay: t === null,
        skipInactive: true,
        showController: true,
        speedOption: [1, 2, 4, 8],
        // Marks JS errors on the timeline.
        tags: { 'loupe.error': '#d6336c' },
      },
    });
  } catch (err) {
    mount(stage, notice('error', 'The replay could not start', h('p', {}, (err as Error).message)));
    return;
  }
  window.loupePlayer = player;
  if (t !== null) player.goto(t, false);

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

  const errs = errorList(evs, player);
  if (errs) main.append(errs);
}

function facts(s: Session): HTMLElement {
  const item = (label: string, value: Node | string, title?: string) =>
    h('div', { class: 'fact' }, h('dt', {}, label), h('dd', { title }, value));
  return h(
    'dl',
    { class: 'facts' },
    item('Started', when(s.started_at), s.started_at),
    item('Duration', duration(s.duration_ms)),
    item('Pages', String(s.page_count)),
    item('Clicks', String(s.click_count)),
    item('Browser', browser(s.user_agent), s.user_agent),
    item('Entry page', path(s.entry_url), s.entry_url),
  );
}

interface LoupeError {
  message?: string;
  source?: string;
  line?: number;
  kind?: string;
}

/** errorList lists the session's JS errors; clicking one seeks the player there. */
function errorList(evs: RRwebEvent[], player: rrwebPlayer): HTMLElement | null {
  const start = evs[0].timestamp;
  const items: HTMLElement[] = [];
  for (const e of evs) {
    const d = e.data as { tag?: string; payload?: LoupeError } | null;
    if (e.type !== EVENT_CUSTOM || d?.tag !== 'loupe.error') continue;
    const p = d.payload ?? {};
    const at = Math.max(0, e.timestamp - start);
    const where = p.source ? `${path(p.source)}${p.line ? `:${p.line}` : ''}` : '';
    const btn = h(
      'button',
      { type: 'button', class: 'err', title: 'Show this moment' },
      h('span', { class: 'err__time' }, duration(at)),
      h('span', { class: 'err__kind' }, p.kind === 'rejection' ? 'Unhandled rejection' : 'Error'),
      h('span', { class: 'err__msg' }, p.message || '(no message)'),
      where && h('span', { class: 'err__src' }, where),
    );
    btn.addEventListener('click', () => player.goto(at, false));
    items.push(h('li', {}, btn));
  }
  if (!items.length) return null;
  return h('section', { class: 'errors card' }, h('h2', {}, `JavaScript errors (${items.length})`), h('ul', {}, ...items));
}
