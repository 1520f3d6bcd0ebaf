// The projects page: the projects the caller may see (the API's list follows the policies),
// a form to create one in one of their groups, and renaming and deleting each.

import { api, explain } from './api.js';
import { announce, confirmDialog, fill, formatDate, h, state } from './dom.js';

export async function showProjects(main, context) {
  document.title = 'Projects — ipm';
  const list = h('ul', { class: 'projects', 'aria-labelledby': 'projects-title' });
  const status = h('div', { class: 'list-status' });
  const more = h('div', { class: 'more' });
  fill(main,
    h('h1', { id: 'page-title' }, 'Projects'),
    createForm(context),
    h('section', { 'aria-labelledby': 'projects-title' },
      h('h2', { id: 'projects-title' }, 'Your projects'), status, list, more));
  main.focus();

  const load = async (cursor) => {
    fill(more);
    if (!cursor) fill(status, state('Loading projects…'));
    list.setAttribute('aria-busy', 'true');
    let pageOf;
    try {
      pageOf = await api.projects(cursor);
    } catch (e) {
      fill(status, state(explain(e, 'load the projects'), { error: true, retry: () => load(cursor) }));
      return;
    } finally {
      list.removeAttribute('aria-busy');
    }
    fill(status);
    for (const p of pageOf.items) list.append(projectItem(p, context));
    if (!list.children.length) {
      fill(status, state(context.me.create_groups.length
        ? 'No projects yet. Create the first one above.'
        : 'No projects yet, and none of your groups may create one. Ask an administrator to add you to a group.'));
    }
    if (pageOf.next_cursor) {
      more.append(h('button', { type: 'button', class: 'secondary', on: { click: () => load(pageOf.next_cursor) } }, 'Show more projects'));
    }
  };
  await load(null);
}

function createForm(context) {
  const groups = context.me.create_groups;
  const section = h('section', { class: 'panel', 'aria-labelledby': 'new-title' }, h('h2', { id: 'new-title' }, 'New project'));
  if (!groups.length) {
    section.append(h('p', {}, 'None of your groups may create projects.'));
    return section;
  }
  const name = h('input', { id: 'new-name', name: 'name', required: true, maxlength: '120', autocomplete: 'off' });
  const group = h('select', { id: 'new-group', name: 'group' }, groups.map((g) => h('option', { value: g }, g)));
  const error = h('p', { id: 'new-error', class: 'field-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Create project');
  const form = h('form', { class: 'inline-form', on: { submit: async (e) => {
    e.preventDefault();
    error.textContent = '';
    name.removeAttribute('aria-invalid');
    submit.disabled = true;
    try {
      const p = await api.createProject(name.value, group.value);
      announce(`Project “${p.name}” created.`);
      context.navigate(`/projects/${p.id}`);
    } catch (err) {
      error.textContent = explain(err, 'create the project');
      name.setAttribute('aria-invalid', 'true');
      name.focus();
    } finally {
      submit.disabled = false;
    }
  } } },
  h('div', { class: 'field' }, h('label', { for: 'new-name' }, 'Name'), name),
  h('div', { class: 'field' }, h('label', { for: 'new-group' }, 'Group'), group),
  submit);
  name.setAttribute('aria-describedby', 'new-error');
  section.append(form, error);
  return section;
}

function projectItem(p, context) {
  const item = h('li', { class: 'card' });
  const show = () => fill(item,
    h('div', { class: 'card-main' },
      h('a', { href: `/projects/${p.id}`, 'data-nav': true, class: 'project-link' }, p.name),
      h('span', { class: 'badge' }, h('span', { class: 'visually-hidden' }, 'group '), p.meta_group_id),
      h('p', { class: 'meta' }, `Created by ${p.created_by} on ${formatDate(p.created_at)}`)),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Rename ${p.name}`, on: { click: () => rename(item, p, show) } }, 'Rename'),
      h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${p.name}`, on: { click: () => remove(item, p, context) } }, 'Delete')));
  show();
  return item;
}

/** Replaces a project's line with a form to rename it; Escape or Cancel gives it back. */
export function renameForm(p, { onDone, onCancel, idPrefix }) {
  const inputId = `${idPrefix}-rename-${p.id}`;
  const input = h('input', { id: inputId, value: p.name, required: true, maxlength: '120', autocomplete: 'off' });
  const error = h('p', { id: `${inputId}-error`, class: 'field-error', role: 'alert' });
  input.setAttribute('aria-describedby', error.id);
  const cancel = h('button', { type: 'button', class: 'secondary', on: { click: onCancel } }, 'Cancel');
  const form = h('form', { class: 'inline-form', on: { submit: async (e) => {
    e.preventDefault();
    try {
      const changed = await api.renameProject(p.id, input.value);
      announce(`Project renamed to “${changed.name}”.`);
      onDone(changed);
    } catch (err) {
      error.textContent = explain(err, 'rename the project');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  } } },
  h('div', { class: 'field' }, h('label', { for: inputId }, `New name for “${p.name}”`), input),
  h('button', { type: 'submit' }, 'Save'), cancel);
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') onCancel();
  });
  const box = h('div', { class: 'rename' }, form, error);
  queueMicrotask(() => { input.focus(); input.select(); });
  return box;
}

function rename(item, p, show) {
  const back = () => { show(); item.querySelector('button')?.focus(); };
  fill(item, renameForm(p, {
    idPrefix: 'list',
    onCancel: back,
    onDone: (changed) => { Object.assign(p, changed); back(); },
  }));
}

/** Moves focus to `target`, or to the page's heading when nothing is left to go to. */
export function focusAfterRemoval(target) {
  const heading = document.getElementById('page-title');
  if (target) {
    target.focus();
  } else if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

/** Asks, then deletes a project and everything in it. */
export async function deleteProject(p) {
  const sure = await confirmDialog({
    title: `Delete “${p.name}”?`,
    body: `The project and all of its images will be deleted for everyone in ${p.meta_group_id}. This cannot be undone.`,
    confirm: 'Delete project',
  });
  if (!sure) return false;
  await api.deleteProject(p.id);
  announce(`Project “${p.name}” deleted.`);
  return true;
}

async function remove(item, p) {
  try {
    if (!(await deleteProject(p))) return;
    const next = item.nextElementSibling || item.previousElementSibling;
    const list = item.parentElement;
    item.remove();
    focusAfterRemoval(next?.querySelector('a'));
    if (list && !list.children.length) {
      list.before(state('No projects left. Create one above.'));
    }
  } catch (e) {
    announce(explain(e, `delete “${p.name}”`));
  }
}
