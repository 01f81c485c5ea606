// Tags and notes on a session: what a team writes down while watching.

import { account, addNote, canDeleteNote, canEdit, deleteNote, notes as fetchNotes, setTags, tags as fetchTags, type Note } from './api';
import { h, mount } from './dom';
import { duration, when } from './format';
import type { Clock } from './player';

const MAX_TAG = 64;
const MAX_NOTE = 2000;

/** tagEditor shows a session's tags; each can be removed, and new ones added. */
export function tagEditor(id: string, initial: string[] | undefined): HTMLElement {
  const editable = canEdit(account());
  let list = [...(initial ?? [])];
  const chips = h('ul', { class: 'tags__list' });
  const input = h('input', { type: 'text', name: 'tag', placeholder: 'Add a tag', maxlength: String(MAX_TAG), autocomplete: 'off', 'aria-label': 'New tag' });
  const status = h('span', { class: 'tags__status', role: 'status' });
  const form = h('form', { class: 'tags__add' }, input, h('button', { type: 'submit', class: 'btn' }, 'Add'));

  const draw = () => {
    mount(
      chips,
      ...list.map((t) => {
        const link = h('a', { href: '/?tag=' + encodeURIComponent(t), title: 'Sessions with this tag' }, t);
        if (!editable) return h('li', { class: 'tag', 'data-tag': t }, link);
        const rm = h('button', { type: 'button', class: 'tag__rm', title: `Remove tag ${t}`, 'aria-label': `Remove tag ${t}` }, '×');
        rm.addEventListener('click', () => save(list.filter((x) => x !== t)));
        return h('li', { class: 'tag', 'data-tag': t }, link, rm);
      }),
    );
  };
  const save = async (next: string[]) => {
    status.textContent = 'Saving…';
    try {
      const got = await setTags(id, next);
      list = got.length || !next.length ? got : next;
      status.textContent = '';
    } catch (err) {
      status.textContent = `Not saved: ${(err as Error).message}`;
    }
    draw();
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    input.value = '';
    if (!list.includes(t)) void save([...list, t]);
  });
  draw();
  // The session object may not carry tags; ask for them.
  if (initial === undefined) {
    fetchTags(id).then(
      (got) => {
        list = got;
        draw();
      },
      () => {},
    );
  }
  return h('div', { class: 'tags' }, h('span', { class: 'tags__label' }, 'Tags'), chips, editable ? form : null, status);
}

/** notesPanel lists a session's notes and adds new ones at the player's current moment. */
export function notesPanel(id: string, clock: Clock): HTMLElement {
  const me = account();
  const list = h('ul', { class: 'notes__list' });
  const status = h('p', { class: 'notes__status', role: 'status' });
  const text = h('textarea', { name: 'text', rows: '3', maxlength: String(MAX_NOTE), placeholder: 'What did you notice?', 'aria-label': 'Note' });
  const atNow = h('input', { type: 'checkbox', name: 'at_now' });
  atNow.checked = true;
  const form = h(
    'form',
    { class: 'notes__add' },
    text,
    h(
      'div',
      { class: 'notes__row' },
      h('label', { class: 'check' }, atNow, 'At the current moment'),
      h('button', { type: 'submit', class: 'btn btn--primary' }, 'Add note'),
    ),
  );

  const load = async () => {
    let got: Note[];
    try {
      got = await fetchNotes(id);
    } catch (err) {
      status.textContent = `Notes could not be loaded: ${(err as Error).message}`;
      return;
    }
    status.textContent = got.length ? '' : 'No notes yet.';
    mount(
      list,
      ...got.map((n) => {
        const rm = canDeleteNote(me, n) ? h('button', { type: 'button', class: 'note__rm', title: 'Delete this note' }, 'Delete') : null;
        rm?.addEventListener('click', async () => {
          try {
            await deleteNote(id, n.id);
          } catch (err) {
            status.textContent = `Not deleted: ${(err as Error).message}`;
            return;
          }
          void load();
        });
        let at: HTMLElement | null = null;
        if (n.at_ms !== null) {
          const ms = n.at_ms;
          at = h('button', { type: 'button', class: 'note__at', title: 'Show this moment' }, duration(ms));
          at.addEventListener('click', () => clock.seek(ms));
        }
        return h(
          'li',
          { class: 'note', 'data-note': n.id },
          h(
            'div',
            { class: 'note__meta' },
            at,
            n.author ? h('span', { class: 'note__author' }, n.author) : null,
            n.created_at ? h('span', { class: 'muted' }, when(n.created_at)) : null,
            rm,
          ),
          h('p', { class: 'note__text' }, n.text),
        );
      }),
    );
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = text.value.trim();
    if (!t) return;
    try {
      await addNote(id, t, atNow.checked ? Math.round(clock.now()) : null);
    } catch (err) {
      status.textContent = `Not saved: ${(err as Error).message}`;
      return;
    }
    text.value = '';
    void load();
  });
  void load();
  return h('div', { class: 'panel panel--notes' }, canEdit(me) ? form : null, status, list);
}
