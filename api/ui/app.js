// The web UI's entry point: who is signed in, and which page the address shows. Every page
// is a view of the API; links within the app change the address without reloading.

import { api, explain } from './api.js';
import { fill, h, state } from './dom.js';
import { showProject } from './project.js';
import { showProjects } from './projects.js';

const main = document.getElementById('main');
const context = { me: null, navigate };

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

async function route() {
  const project = /^\/projects\/([^/]+)$/.exec(location.pathname);
  if (project) await showProject(main, context, decodeURIComponent(project[1]));
  else await showProjects(main, context);
}

function showWho(me) {
  const whoami = document.getElementById('whoami');
  const groups = me.groups.length ? me.groups.join(', ') : 'no group';
  fill(whoami,
    h('span', { class: 'visually-hidden' }, 'Signed in as '),
    h('span', { class: 'email' }, me.email),
    h('span', { class: 'groups', title: 'Your groups' },
      h('span', { class: 'visually-hidden' }, ', groups: '), groups));
}

async function start() {
  fill(main, state('Loading…'));
  try {
    context.me = await api.me();
  } catch (e) {
    fill(main, h('h1', {}, 'Image Project Manager'), state(explain(e, 'find out who you are'), { error: true, retry: start }));
    return;
  }
  showWho(context.me);
  await route();
}

// Links marked `data-nav` stay in the app; a modified click opens a tab as usual.
document.addEventListener('click', (e) => {
  const link = e.target instanceof Element ? e.target.closest('a[data-nav]') : null;
  if (!link || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', () => route());
// A file dropped outside the drop zone must not replace the page.
for (const event of ['dragover', 'drop']) document.addEventListener(event, (e) => e.preventDefault());

start();
