// Building the page from data without ever parsing it as HTML: every text goes in as text.

/** An element: `h('a', {href: '/', class: 'x', on: {click: f}}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === 'class') {
      el.className = value;
    } else if (key in el && typeof value !== 'string') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says `message` to screen readers and shows it briefly. */
export function announce(message) {
  const notice = document.getElementById('notice');
  if (!notice) return;
  notice.textContent = message;
  notice.classList.add('shown');
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => notice.classList.remove('shown'), 6000);
}

const UNITS = ['bytes', 'KB', 'MB', 'GB'];

export function formatBytes(n) {
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  if (unit === 0) return n === 1 ? '1 byte' : `${n} bytes`;
  return `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * Asks the user to confirm in a modal dialog; resolves true or false. Focus goes to the safe
 * choice and returns where it was.
 */
export function confirmDialog({ title, body, confirm }) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const heading = h('h2', { id: 'confirm-title' }, title);
    const cancelButton = h('button', { type: 'button', class: 'secondary', value: 'cancel' }, 'Cancel');
    const confirmButton = h('button', { type: 'button', class: 'danger', value: 'confirm' }, confirm);
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-body' },
      heading, h('p', { id: 'confirm-body' }, body), h('div', { class: 'actions' }, cancelButton, confirmButton));
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      if (back instanceof HTMLElement && back.isConnected) back.focus();
      resolve(answer);
    };
    cancelButton.addEventListener('click', () => done(false));
    confirmButton.addEventListener('click', () => done(true));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}

/** A status line for loading, empty and error states; errors get a way to try again. */
export function state(text, { error = false, retry } = {}) {
  return h('div', { class: error ? 'state error' : 'state', role: error ? 'alert' : 'status' },
    h('p', {}, text),
    retry ? h('button', { type: 'button', class: 'secondary', on: { click: retry } }, 'Try again') : null);
}
