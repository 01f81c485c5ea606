// Entry point of the replay UI. The server sends the same HTML shell for
// every page; <div id="app"> says which page it is:
//
//   data-page="sessions"
//   data-page="account"
//   data-page="player" data-session="<id>" [data-t="<ms from session start>"]

import 'rrweb-player/dist/style.css';
import './app.css';
import { renderAccount } from './account';
import { renderPlayer } from './player';
import { renderSessions } from './sessions';
import { mount, notice } from './dom';

function main(): void {
  const root = document.getElementById('app');
  if (!root) return;
  const { page, session, t } = root.dataset;
  if (page === 'sessions') {
    void renderSessions(root);
  } else if (page === 'account') {
    void renderAccount(root);
  } else if (page === 'player' && session) {
    const ms = t === undefined || t === '' ? NaN : Number(t);
    void renderPlayer(root, session, Number.isFinite(ms) && ms >= 0 ? ms : null);
  } else {
    mount(root, notice('error', 'Unknown page', `This page (${page ?? 'none'}) does not exist.`));
  }
}

main();

// A page restored from the back/forward cache shows the DOM it was left
// with, e.g. a filter typed but not applied; draw it again from its URL.
window.addEventListener('pageshow', (e) => {
  if (e.persisted && document.getElementById('app')?.dataset.page === 'sessions') main();
});
