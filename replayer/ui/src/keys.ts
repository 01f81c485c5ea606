// The player's keyboard shortcuts and their help overlay.

import { h } from './dom';

const SPEED_KEYS = [1, 2, 4, 8];
const SEEK_MS = 5000;

export const SHORTCUTS: [keys: string, what: string][] = [
  ['Space', 'Play or pause'],
  ['← / →', 'Back or forward 5 seconds'],
  ['1 2 3 4', 'Speed 1×, 2×, 4×, 8×'],
  ['n / p', 'Next or previous event'],
  ['N / P', 'Next or previous signal (rage, dead or error click, error…)'],
  ['s', 'Skip inactivity on or off'],
  ['?', 'Show or hide this help'],
];

export interface Help {
  el: HTMLElement;
  toggle(show?: boolean): void;
}

/** helpOverlay lists the shortcuts; hidden until toggled. */
export function helpOverlay(): Help {
  const close = h('button', { type: 'button', class: 'btn help__close' }, 'Close');
  const el = h(
    'div',
    { class: 'help', role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Keyboard shortcuts' },
    h(
      'div',
      { class: 'help__box card' },
      h('h2', {}, 'Keyboard shortcuts'),
      h('dl', {}, ...SHORTCUTS.flatMap(([k, w]) => [h('dt', {}, h('kbd', {}, k)), h('dd', {}, w)])),
      close,
    ),
  );
  el.hidden = true;
  const toggle = (show?: boolean) => {
    el.hidden = show === undefined ? !el.hidden : !show;
    if (!el.hidden) close.focus();
  };
  close.addEventListener('click', () => toggle(false));
  el.addEventListener('click', (e) => {
    if (e.target === el) toggle(false);
  });
  return { el, toggle };
}

export interface Actions {
  toggle(): void;
  seekBy(ms: number): void;
  speed(n: number): void;
  skip(): void;
  /** step moves to the next (dir 1) or previous (dir -1) event, or signal only. */
  step(dir: 1 | -1, problemsOnly: boolean): void;
  help: Help;
}

/** bindKeys wires the shortcuts to the document; typing into a field is left alone. */
export function bindKeys(a: Actions): void {
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    const t = e.target as HTMLElement | null;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (!a.help.el.hidden && e.key !== '?' && e.key !== 'Escape') return;
    let done = true;
    switch (e.key) {
      case ' ':
        // A focused button would also be clicked by Space.
        a.toggle();
        break;
      case 'ArrowLeft':
        a.seekBy(-SEEK_MS);
        break;
      case 'ArrowRight':
        a.seekBy(SEEK_MS);
        break;
      case '1':
      case '2':
      case '3':
      case '4':
        a.speed(SPEED_KEYS[Number(e.key) - 1]);
        break;
      case 'n':
      case 'N':
        a.step(1, e.key === 'N');
        break;
      case 'p':
      case 'P':
        a.step(-1, e.key === 'P');
        break;
      case 's':
        a.skip();
        break;
      case '?':
        a.help.toggle();
        break;
      case 'Escape':
        a.help.toggle(false);
        break;
      default:
        done = false;
    }
    if (done) e.preventDefault();
  });
}
