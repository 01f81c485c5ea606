// The "loupe/user" custom event. A site's dom: user rule (collector
// UserRules, e.g. "dom:#account .email") names the element whose text
// identifies the visitor; the proxy passes its selector in the tag's
// data-loupe config ("user"). Once a matching element with text appears,
// the recorder sends that text, whitespace collapsed and trimmed, at most
// 200 characters, once per page:
//
//   "loupe/user" {user}
//
// and the collector makes it the session's user id unless it has one.

import { record } from '@rrweb/record';

export const USER_TAG = 'loupe/user';

const MAX_USER = 200;

/**
 * watchUser sends the text of the first element matching selector as soon
 * as it has some, now or after a later DOM change, and returns a function
 * that stops watching. An empty or invalid selector watches nothing.
 */
export function watchUser(selector: string): () => void {
  if (!selector) return () => {};
  let done = false;
  let obs: MutationObserver | undefined;
  const stop = () => {
    done = true;
    if (obs) obs.disconnect();
  };
  const check = () => {
    if (done) return;
    let el: Element | null;
    try {
      el = document.querySelector(selector);
    } catch {
      stop(); // not a selector this browser knows
      return;
    }
    const text = (el?.textContent ?? '').replace(/\s+/g, ' ').trim();
    if (!text) return;
    stop();
    record.addCustomEvent(USER_TAG, { user: Array.from(text).slice(0, MAX_USER).join('') });
  };
  check();
  if (!done) {
    // Mutation records arrive batched, once per task: one lookup each.
    obs = new MutationObserver(check);
    obs.observe(document, { childList: true, subtree: true, characterData: true });
  }
  return stop;
}
