// The account page: the signed-in user's password and, for an admin, who
// may sign in and with which role.

import { account, addUser, changePassword, deleteUser, listUsers, updateUser, type Account, type User } from './api';
import { h, mount, notice, topBar } from './dom';
import { when } from './format';

const ROLES: [value: string, label: string][] = [
  ['viewer', 'Viewer: watches sessions'],
  ['editor', 'Editor: also tags and notes'],
  ['admin', 'Admin: also users'],
];
const MIN_PASSWORD = 10;

export async function renderAccount(root: HTMLElement): Promise<void> {
  const me = account();
  const main = h('main', { class: 'page page--account' });
  mount(root, topBar(h('a', { class: 'topbar__back', href: '/' }, '← All sessions')), main);
  main.append(passwordCard(me));
  if (me.role === 'admin') main.append(await usersCard(me));
}

/** roleSelect is a choice of role, at value. */
function roleSelect(value: string, name?: string): HTMLSelectElement {
  const sel = h('select', { name, 'aria-label': 'Role' }, ...ROLES.map(([v, label]) => h('option', { value: v }, label))) as HTMLSelectElement;
  sel.value = value;
  return sel;
}

function field(label: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

function passwordInput(name: string, autocomplete: string): HTMLInputElement {
  return h('input', { type: 'password', name, autocomplete, required: '', minlength: String(MIN_PASSWORD) }) as HTMLInputElement;
}

/** passwordCard changes the signed-in user's own password. */
function passwordCard(me: Account): HTMLElement {
  const old = passwordInput('old', 'current-password');
  old.removeAttribute('minlength');
  const next = passwordInput('new', 'new-password');
  const again = passwordInput('again', 'new-password');
  const status = h('p', { class: 'account__status', role: 'status' });
  const form = h(
    'form',
    { class: 'account__form' },
    field('Current password', old),
    field('New password', next),
    field('New password again', again),
    h('button', { type: 'submit', class: 'btn btn--primary' }, 'Change password'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (next.value !== again.value) {
      status.textContent = 'The new passwords differ.';
      return;
    }
    status.textContent = 'Saving…';
    try {
      await changePassword(old.value, next.value);
      status.textContent = 'Password changed. Your other sign-ins have ended.';
      form.reset();
    } catch (err) {
      status.textContent = `Not changed: ${(err as Error).message}`;
    }
  });
  return h('section', { class: 'card account__card' }, h('h2', {}, `Your password (${me.name})`), form, status);
}

/** usersCard lists the users, with their roles to change, passwords to set, and a form to add one. */
async function usersCard(me: Account): Promise<HTMLElement> {
  const status = h('p', { class: 'account__status', role: 'status' });
  const body = h('tbody');
  const card = h(
    'section',
    { class: 'card account__card' },
    h('h2', {}, 'Users'),
    h('table', { class: 'users' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Role'), h('th', {}, 'Added'), h('th', {}, ''))), body),
    addForm(() => void load(), status),
    status,
  );
  const row = (u: User) => {
    const role = roleSelect(u.role);
    role.addEventListener('change', async () => {
      try {
        await updateUser(u.name, { role: role.value });
        status.textContent = `${u.name} is now ${role.value}.`;
      } catch (err) {
        status.textContent = `Not changed: ${(err as Error).message}`;
        role.value = u.role;
      }
    });
    const pw = passwordInput('password', 'new-password');
    pw.placeholder = 'New password';
    const setPw = h('button', { type: 'submit', class: 'btn' }, 'Set password');
    const pwForm = h('form', { class: 'users__password' }, pw, setPw);
    pwForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await updateUser(u.name, { password: pw.value });
        status.textContent = `${u.name}'s password is set; their sign-ins have ended.`;
        pwForm.reset();
      } catch (err) {
        status.textContent = `Not set: ${(err as Error).message}`;
      }
    });
    const del = h('button', { type: 'button', class: 'btn btn--danger' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete ${u.name}? They can no longer sign in.`)) return;
      try {
        await deleteUser(u.name);
        status.textContent = `${u.name} is deleted.`;
        void load();
      } catch (err) {
        status.textContent = `Not deleted: ${(err as Error).message}`;
      }
    });
    return h(
      'tr',
      { 'data-user': u.name },
      h('td', {}, u.name, u.name === me.name ? h('span', { class: 'muted' }, ' (you)') : null),
      h('td', {}, role),
      h('td', {}, when(u.created_at)),
      h('td', { class: 'users__actions' }, pwForm, del),
    );
  };
  const load = async () => {
    try {
      mount(body, ...(await listUsers()).map(row));
    } catch (err) {
      mount(body, h('tr', {}, h('td', { colspan: '4' }, notice('error', 'The users could not be loaded', h('p', {}, (err as Error).message)))));
    }
  };
  await load();
  return card;
}

/** addForm adds a user, then calls done. */
function addForm(done: () => void, status: HTMLElement): HTMLElement {
  const name = h('input', { name: 'name', required: '', autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._@\\-]{0,63}', title: 'lower-case letters, digits and . _ @ -' }) as HTMLInputElement;
  const role = roleSelect('viewer', 'role');
  const pw = passwordInput('password', 'new-password');
  const form = h(
    'form',
    { class: 'account__form users__add' },
    field('Name', name),
    field('Role', role),
    field('Password', pw),
    h('button', { type: 'submit', class: 'btn btn--primary' }, 'Add user'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await addUser(name.value, role.value, pw.value);
      status.textContent = `${name.value} is added.`;
      form.reset();
      done();
    } catch (err) {
      status.textContent = `Not added: ${(err as Error).message}`;
    }
  });
  return form;
}
