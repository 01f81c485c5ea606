// The sessions page: recorded sessions, filtered, sorted and paginated.
//
// The page's query string is the filter: it uses the names of
// GET /api/sessions's parameters, so a shared or reloaded URL shows the same
// list, and the browser's back button returns to the previous filter. The
// form only rewrites the URL; the list is always drawn from location.search.

import { listSessions, type Session, type SessionPage } from './api';
import { h, mount, notice, topBar } from './dom';
import { browser, duration, path, plural, when } from './format';
import { FILTER_SIGNALS, FRICTION_HELP, SIGNALS, frictionParts, shortLabel, signalLabel } from './signals';

/** Text parameters, shown as text inputs, in form order. */
const TEXT_FILTERS: [name: string, label: string, placeholder: string][] = [
  ['url', 'URL visited', '/checkout or *cart*'],
  ['entry', 'Entry page', ''],
  ['exit', 'Exit page', ''],
  ['user', 'User', 'id or email'],
  ['browser', 'Browser', 'Chrome'],
  ['os', 'OS', 'macOS'],
  ['country', 'Country', 'FR'],
  ['referrer', 'Referrer', 'google.com'],
  ['utm_source', 'UTM source', 'newsletter'],
  ['tag', 'Tag', ''],
];

/** Numeric parameters, in form order. */
const NUM_FILTERS: [name: string, label: string][] = [
  ['min_duration', 'Min duration (s)'],
  ['max_duration', 'Max duration (s)'],
  ['min_pages', 'Min pages'],
  ['max_pages', 'Max pages'],
];

const DEVICES = ['desktop', 'mobile', 'tablet', 'bot'];

export const SORTS: [value: string, label: string][] = [
  ['recent', 'Recent'],
  ['friction', 'Worth watching'],
  ['duration', 'Longest'],
  ['pages', 'Most pages'],
];

/** Every parameter the page passes on to the API; the rest of the query string is ignored. */
const API_PARAMS = new Set([
  ...TEXT_FILTERS.map(([n]) => n),
  ...NUM_FILTERS.map(([n]) => n),
  'device',
  'signal',
  'from',
  'to',
  'sort',
  'limit',
  'cursor',
  'offset',
]);

/** Parameters that change which sessions match, as opposed to order and paging. */
const PAGING = new Set(['sort', 'limit', 'cursor', 'offset']);

export async function renderSessions(root: HTMLElement): Promise<void> {
  const query = apiQuery(new URLSearchParams(location.search));
  const sort = query.get('sort') || 'recent';
  const count = h('span', { class: 'topbar__meta' });
  const results = h('div', { class: 'results' }, notice('loading', 'Loading sessions…'));
  const main = h('main', { class: 'page' }, sortTabs(query, sort), sort === 'friction' ? frictionLegend() : null, filterForm(query), results);
  mount(root, topBar(h('span', { class: 'topbar__title' }, sort === 'friction' ? 'Worth watching' : 'Sessions'), count), main);

  let page: SessionPage;
  try {
    page = await listSessions(query);
  } catch (err) {
    mount(
      results,
      notice('error', 'Sessions could not be loaded', h('p', {}, (err as Error).message), h('p', {}, h('a', { href: '' }, 'Try again'))),
    );
    return;
  }
  const filtered = [...query.keys()].some((k) => !PAGING.has(k));
  const paged = query.has('cursor') || (query.get('offset') ?? '0') !== '0';
  if (!page.sessions.length) {
    mount(results, emptyNotice(filtered, paged));
    return;
  }
  count.textContent =
    typeof page.total === 'number' ? plural(page.total, 'session') : plural(page.sessions.length, 'session') + ' on this page';
  mount(results, table(page.sessions), pager(query, page));
}

/** apiQuery keeps the parameters the API knows, without empty values. */
export function apiQuery(q: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams();
  for (const [k, v] of q) {
    if (API_PARAMS.has(k) && v.trim() !== '') out.append(k, v.trim());
  }
  return out;
}

function emptyNotice(filtered: boolean, paged: boolean): HTMLElement {
  if (paged) return notice('empty', 'No more sessions', h('p', {}, h('a', { href: firstPage() }, 'Back to the first page')));
  if (filtered) {
    return notice(
      'empty',
      'No session matches these filters',
      h('p', {}, h('a', { href: '/' }, 'Clear the filters')),
    );
  }
  return notice(
    'empty',
    'No sessions yet',
    h('p', {}, 'Open the site through the Loupe proxy and click around. Each visit appears here a few seconds later.'),
    h('p', { class: 'muted' }, 'Nothing showing up? Check that pages served by the proxy load /__loupe/recorder.js.'),
  );
}

function firstPage(): string {
  const q = new URLSearchParams(location.search);
  q.delete('cursor');
  q.delete('offset');
  return href(q);
}

function href(q: URLSearchParams): string {
  const s = q.toString();
  return '/' + (s ? '?' + s : '');
}

function sortTabs(query: URLSearchParams, current: string): HTMLElement {
  const links = SORTS.map(([value, label]) => {
    const q = new URLSearchParams(query);
    q.delete('cursor');
    q.delete('offset');
    if (value === 'recent') q.delete('sort');
    else q.set('sort', value);
    const attrs: Record<string, string> = { class: 'tab', href: href(q), 'data-sort': value };
    if (value === current) {
      attrs['aria-current'] = 'page';
      attrs.class += ' tab--current';
    }
    if (value === 'friction') attrs.title = FRICTION_HELP;
    return h('a', attrs, label);
  });
  return h('nav', { class: 'tabs', 'aria-label': 'Sort sessions' }, ...links);
}

function frictionLegend(): HTMLElement {
  return h(
    'details',
    { class: 'legend card', open: '' },
    h('summary', {}, 'Sessions ranked by friction: how the score is computed'),
    h('p', {}, FRICTION_HELP),
  );
}

/** toLocalInput turns an RFC 3339 time or Unix ms into a datetime-local value. */
function toLocalInput(v: string | null): string {
  if (!v) return '';
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function filterForm(query: URLSearchParams): HTMLElement {
  const field = (label: string, input: HTMLElement) => h('label', { class: 'field' }, h('span', {}, label), input);
  const text = (name: string, placeholder: string) =>
    h('input', { type: 'text', name, value: query.get(name) ?? '', placeholder: placeholder || undefined, autocomplete: 'off' });

  const from = h('input', { type: 'datetime-local', name: 'from', value: toLocalInput(query.get('from')) });
  const to = h('input', { type: 'datetime-local', name: 'to', value: toLocalInput(query.get('to')) });
  const device = h('select', { name: 'device' }, h('option', { value: '' }, 'Any'), ...DEVICES.map((d) => h('option', { value: d }, d)));
  device.value = query.get('device') ?? '';
  const sort = h('input', { type: 'hidden', name: 'sort', value: query.get('sort') ?? '' });
  const limit = h('input', { type: 'hidden', name: 'limit', value: query.get('limit') ?? '' });

  const chosen = new Set(query.getAll('signal'));
  const signals = h(
    'fieldset',
    { class: 'signals-filter' },
    h('legend', {}, 'Signals'),
    ...FILTER_SIGNALS.map(([kind, label]) => {
      const box = h('input', { type: 'checkbox', name: 'signal', value: kind });
      box.checked = chosen.has(kind);
      return h('label', { class: `check badge badge--${kind}` }, box, label);
    }),
  );

  const form = h(
    'form',
    // autocomplete=off also stops the browser restoring typed values on
    // Back, which would show a filter the URL does not hold.
    { class: 'filters card', method: 'get', action: '/', role: 'search', autocomplete: 'off' },
    h(
      'div',
      { class: 'filters__grid' },
      field('From', from),
      field('To', to),
      ...TEXT_FILTERS.map(([name, label, ph]) => field(label, text(name, ph))),
      field('Device', device),
      ...NUM_FILTERS.map(([name, label]) =>
        field(label, h('input', { type: 'number', min: '0', step: '1', name, value: query.get(name) ?? '', inputmode: 'numeric' })),
      ),
    ),
    signals,
    sort,
    limit,
    h(
      'div',
      { class: 'filters__actions' },
      h('button', { type: 'submit', class: 'btn btn--primary' }, 'Apply filters'),
      h('a', { class: 'btn', href: href(keepOnly(query, ['sort'])) }, 'Clear'),
    ),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (typeof v !== 'string' || v.trim() === '') continue;
      if (k === 'from' || k === 'to') {
        // datetime-local is the viewer's local time; the URL carries an
        // absolute time so that a shared link means the same everywhere.
        const ms = new Date(v).getTime();
        if (Number.isFinite(ms)) q.append(k, new Date(ms).toISOString());
        continue;
      }
      q.append(k, v.trim());
    }
    location.assign(href(q));
  });
  return form;
}

function keepOnly(q: URLSearchParams, names: string[]): URLSearchParams {
  const out = new URLSearchParams();
  for (const n of names) for (const v of q.getAll(n)) out.append(n, v);
  return out;
}

function pager(query: URLSearchParams, page: SessionPage): HTMLElement | null {
  let nextHref = '';
  const next = page.next;
  if (next !== undefined && next !== null && next !== '') {
    const q = new URLSearchParams(query);
    if (typeof next === 'number') {
      q.delete('cursor');
      q.set('offset', String(next));
    } else if (next.startsWith('?') || next.startsWith('/')) {
      const given = new URLSearchParams(next.slice(next.indexOf('?') + 1));
      for (const k of ['cursor', 'offset']) {
        q.delete(k);
        const v = given.get(k);
        if (v !== null) q.set(k, v);
      }
    } else {
      q.delete('offset');
      q.set('cursor', next);
    }
    nextHref = href(q);
  } else if (!('next' in page)) {
    // A server without "next": offset paging while pages come back full.
    const limit = Number(query.get('limit') || 0);
    if (limit > 0 && page.sessions.length >= limit) {
      const q = new URLSearchParams(query);
      q.set('offset', String(Number(query.get('offset') || 0) + limit));
      nextHref = href(q);
    }
  }
  const paged = query.has('cursor') || (query.get('offset') ?? '0') !== '0';
  if (!nextHref && !paged) return null;
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    paged ? h('a', { class: 'btn', href: firstPage(), rel: 'first' }, '« First page') : h('span', {}),
    nextHref ? h('a', { class: 'btn', href: nextHref, rel: 'next' }, 'Next page ›') : h('span', { class: 'muted' }, 'Last page'),
  );
}

function device(s: Session): string {
  const parts = [s.browser ? `${s.browser}${s.browser_version ? ' ' + s.browser_version.split('.')[0] : ''}` : '', s.os ?? '', s.device ?? ''];
  const shown = parts.filter(Boolean).join(' · ');
  return shown || browser(s.user_agent);
}

/** badges shows a session's signal counts, one badge per kind present. */
export function badges(s: Session, short = false): HTMLElement {
  const out = h('span', { class: 'badges' });
  for (const [kind] of SIGNALS) {
    const n = s.signals?.[kind] ?? 0;
    if (!n) continue;
    const label = short ? shortLabel(kind) : signalLabel(kind);
    out.append(h('span', { class: `badge badge--${kind}`, title: plural(n, signalLabel(kind).toLowerCase()), 'data-kind': kind }, `${label} ${n}`));
  }
  return out;
}

function table(list: Session[]): HTMLElement {
  const th = (label: string, cls?: string) => h('th', { scope: 'col', class: cls }, label);
  const head = h(
    'thead',
    {},
    h(
      'tr',
      {},
      th('Started'),
      th('Duration', 'num'),
      th('Pages', 'num'),
      th('User'),
      th('Browser · OS · device'),
      th('Country'),
      th('Signals'),
      h('th', { scope: 'col', class: 'num', title: FRICTION_HELP }, 'Friction'),
      th('Entry → exit'),
    ),
  );
  const body = h('tbody', {});
  for (const s of list) {
    const link = `/sessions/${encodeURIComponent(s.id)}`;
    const friction = s.friction ?? 0;
    const row = h(
      'tr',
      { class: 'row-link', 'data-session': s.id },
      h('td', { class: 'nowrap' }, h('a', { href: link, title: s.started_at }, when(s.started_at))),
      h('td', { class: 'num' }, duration(s.duration_ms)),
      h('td', { class: 'num' }, s.page_count),
      h('td', { class: 'user', title: s.user_id || undefined }, s.user_id || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'nowrap', title: s.user_agent }, device(s)),
      h('td', {}, s.country || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'signals' }, badges(s, true)),
      h('td', { class: 'num friction', title: frictionParts(s.signals, s.converted) }, friction ? String(Math.round(friction * 10) / 10) : '0'),
      h(
        'td',
        { class: 'url', title: `${s.entry_url}${s.exit_url ? ' → ' + s.exit_url : ''}` },
        path(s.entry_url),
        s.exit_url && s.exit_url !== s.entry_url ? h('span', { class: 'muted' }, ' → ' + path(s.exit_url)) : null,
      ),
    );
    // The whole row opens the session; the link in the first cell keeps
    // keyboard access, middle-click and "open in new tab" working.
    row.addEventListener('click', (e) => {
      if ((e.target as Element).closest('a') || getSelection()?.toString()) return;
      location.href = link;
    });
    body.append(row);
  }
  return h('div', { class: 'card table-wrap' }, h('table', { class: 'sessions' }, head, body));
}
