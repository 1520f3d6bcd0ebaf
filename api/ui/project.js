// A project's page, at its own address: its images as a grid of thumbnails that open a larger
// view, uploads by picker or drag-and-drop, renaming and deleting the project.

import { api, explain, thumbnailUrl } from './api.js';
import { announce, fill, h, state } from './dom.js';
import { deleteProject, focusAfterRemoval, renameForm } from './projects.js';
import { uploader } from './upload.js';
import { openViewer } from './viewer.js';

/** Types the browser cannot show, or the server makes no thumbnail of. */
const NO_THUMBNAIL = new Set(['image/avif', 'image/svg+xml']);

export async function showProject(main, context, id) {
  document.title = 'Project — ipm';
  fill(main, state('Loading the project…'));
  let project;
  try {
    project = await api.project(id);
  } catch (e) {
    const hidden = e.status === 403 || e.status === 404;
    fill(main,
      breadcrumb(null),
      h('h1', { id: 'page-title' }, 'Project not available'),
      hidden
        ? state('This project does not exist, or you do not have access to it. Check the address, or ask a member of its group for access.', { error: true })
        : state(explain(e, 'open this project'), { error: true, retry: () => showProject(main, context, id) }),
      h('p', {}, h('a', { href: '/', 'data-nav': true }, 'Back to your projects')));
    main.focus();
    return;
  }
  document.title = `${project.name} — ipm`;
  const images = [];
  const grid = h('ul', { class: 'grid', 'aria-labelledby': 'images-title' });
  const status = h('div', { class: 'list-status' });
  const more = h('div', { class: 'more' });
  const count = h('span', { class: 'count' });
  const header = h('div', { class: 'project-header' });

  const refreshCount = () => {
    count.textContent = images.length === 1 ? '1 image' : `${images.length} images`;
    if (!images.length) fill(status, state('No images yet. Drag images onto the box above, or choose files.'));
    else fill(status);
  };

  const open = (image) => openViewer(images, images.indexOf(image), {
    onDelete: (gone) => {
      const at = images.indexOf(gone);
      images.splice(at, 1);
      const tile = grid.children[at];
      tile?.remove();
      refreshCount();
      focusAfterRemoval(grid.children[Math.min(at, grid.children.length - 1)]?.querySelector('button'));
    },
  });

  const add = (image, { first = false } = {}) => {
    if (first) images.unshift(image);
    else images.push(image);
    const item = tile(image, open);
    if (first) grid.prepend(item);
    else grid.append(item);
    refreshCount();
  };

  const showHeader = () => fill(header,
    h('div', { class: 'title-row' },
      h('h1', { id: 'page-title' }, project.name),
      h('span', { class: 'badge' }, h('span', { class: 'visually-hidden' }, 'group '), project.meta_group_id)),
    project.description ? h('p', { class: 'description' }, project.description) : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', on: { click: startRename } }, 'Rename project'),
      h('button', { type: 'button', class: 'danger', on: { click: remove } }, 'Delete project')));

  function startRename() {
    const back = () => { showHeader(); header.querySelector('.actions button')?.focus(); };
    fill(header, renameForm(project, {
      idPrefix: 'page',
      onCancel: back,
      onDone: (changed) => {
        project = changed;
        document.title = `${project.name} — ipm`;
        back();
      },
    }));
  }

  async function remove() {
    try {
      if (await deleteProject(project)) context.navigate('/', { replace: true });
    } catch (e) {
      announce(explain(e, `delete “${project.name}”`));
    }
  }

  showHeader();
  fill(main,
    breadcrumb(project),
    header,
    uploader(project, { onUploaded: (image) => add(image, { first: false }) }),
    h('section', { 'aria-labelledby': 'images-title' },
      h('h2', { id: 'images-title' }, 'Images ', count), status, grid, more));
  main.focus();

  const load = async (cursor) => {
    fill(more);
    if (!cursor) fill(status, state('Loading images…'));
    grid.setAttribute('aria-busy', 'true');
    let pageOf;
    try {
      pageOf = await api.images(project.id, cursor);
    } catch (e) {
      fill(status, state(explain(e, 'load the images'), { error: true, retry: () => load(cursor) }));
      return;
    } finally {
      grid.removeAttribute('aria-busy');
    }
    for (const image of pageOf.items) add(image);
    refreshCount();
    if (pageOf.next_cursor) {
      more.append(h('button', { type: 'button', class: 'secondary', on: { click: () => load(pageOf.next_cursor) } }, 'Show more images'));
    }
  };
  await load(null);
}

function breadcrumb(project) {
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' },
    h('ol', {},
      h('li', {}, h('a', { href: '/', 'data-nav': true }, 'Projects')),
      project ? h('li', {}, h('span', { 'aria-current': 'page' }, project.name)) : null));
}

function placeholder(image) {
  const kind = (image.content_type.split('/')[1] || 'file').replace('svg+xml', 'svg').toUpperCase();
  return h('span', { class: 'placeholder' }, `${kind}, no preview`);
}

function tile(image, open) {
  let picture;
  if (NO_THUMBNAIL.has(image.content_type)) {
    picture = placeholder(image);
  } else {
    picture = h('img', { src: thumbnailUrl(image.id), alt: '', loading: 'lazy', decoding: 'async' });
    picture.addEventListener('error', () => picture.replaceWith(placeholder(image)), { once: true });
  }
  return h('li', { class: 'tile' },
    h('button', { type: 'button', class: 'thumb', on: { click: () => open(image) } },
      picture, h('span', { class: 'caption' }, image.filename)));
}
