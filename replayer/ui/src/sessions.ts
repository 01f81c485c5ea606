// The sessions page: every recorded session, newest first.

import { sessions, type Session } from './api';
import { h, mount, notice, topBar } from './dom';
import { browser, duration, path, plural, when } from './format';

export async function renderSessions(root: HTMLElement): Promise<void> {
  const count = h('span', { class: 'topbar__meta' });
  const main = h('main', { class: 'page' }, notice('loading', 'Loading sessions…'));
  mount(root, topBar(h('span', { class: 'topbar__title' }, 'Sessions'), count), main);

  let list: Session[];
  try {
    list = await sessions();
  } catch (err) {
    mount(
      main,
      notice(
        'error',
        'Sessions could not be loaded',
        h('p', {}, (err as Error).message),
        h('p', {}, h('a', { href: '' }, 'Try again')),
      ),
    );
    return;
  }

  if (!list.length) {
    mount(
      main,
      notice(
        'empty',
        'No sessions yet',
        h('p', {}, 'Open the site through the Loupe proxy and click around. Each visit appears here a few seconds later.'),
        h('p', { class: 'muted' }, 'Nothing showing up? Check that pages served by the proxy load /__loupe/recorder.js.'),
      ),
    );
    return;
  }

  count.textContent = plural(list.length, 'session');
  mount(main, table(list));
}

function table(list: Session[]): HTMLElement {
  const head = h(
    'thead',
    {},
    h(
      'tr',
      {},
      h('th', { scope: 'col' }, 'Started'),
      h('th', { scope: 'col', class: 'num' }, 'Duration'),
      h('th', { scope: 'col', class: 'num' }, 'Pages'),
      h('th', { scope: 'col', class: 'num' }, 'Clicks'),
      h('th', { scope: 'col' }, 'Entry page'),
      h('th', { scope: 'col' }, 'Browser'),
    ),
  );
  const body = h('tbody', {});
  for (const s of list) {
    const href = `/sessions/${encodeURIComponent(s.id)}`;
    const row = h(
      'tr',
      { class: 'row-link' },
      h('td', { class: 'nowrap' }, h('a', { href, title: s.started_at }, when(s.started_at))),
      h('td', { class: 'num' }, duration(s.duration_ms)),
      h('td', { class: 'num' }, s.page_count),
      h('td', { class: 'num' }, s.click_count),
      h('td', { class: 'url', title: s.entry_url }, path(s.entry_url)),
      h('td', { class: 'nowrap', title: s.user_agent }, browser(s.user_agent)),
    );
    // The whole row opens the session; the link in the first cell keeps
    // keyboard access, middle-click and "open in new tab" working.
    row.addEventListener('click', (e) => {
      if ((e.target as Element).closest('a') || getSelection()?.toString()) return;
      location.href = href;
    });
    body.append(row);
  }
  return h('div', { class: 'card' }, h('table', { class: 'sessions' }, head, body));
}
