// A few lines of DOM building, so no page ever assembles HTML from strings:
// session data (URLs, user agents, error messages) comes from visitors and
// is only ever set as text or attribute values.

type Child = Node | string | number | null | undefined | false;

/** h creates an element with attributes (class, href, title…) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
  return el;
}

/** mount replaces the contents of root. */
export function mount(root: Element, ...children: Child[]): void {
  root.replaceChildren();
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    root.append(typeof c === 'number' ? String(c) : c);
  }
}

/** topBar is the header both pages share. */
export function topBar(...right: Child[]): HTMLElement {
  return h('header', { class: 'topbar' }, h('a', { class: 'brand', href: '/' }, 'Loupe'), ...right);
}

/** notice is a centred message: empty states, errors, loading. */
export function notice(kind: 'empty' | 'error' | 'loading', title: string, ...body: Child[]): HTMLElement {
  return h(
    'div',
    { class: `notice notice--${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('h2', {}, title),
    ...body,
  );
}
