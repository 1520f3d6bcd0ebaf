// The larger view of one image: the picture, its metadata, download and delete; the arrow
// keys and buttons go to the previous and next image, Escape closes.

import { api, contentUrl, explain, thumbnailUrl } from './api.js';
import { announce, confirmDialog, fill, formatBytes, formatDate, h } from './dom.js';

/** Types browsers show; the others are shown by their thumbnail. */
const SHOWN = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);

export function openViewer(images, start, { onDelete }) {
  const back = document.activeElement;
  let index = start;
  const body = h('div', { class: 'viewer-body' });
  const dialog = h('dialog', { class: 'viewer', 'aria-labelledby': 'viewer-title' }, body);
  const close = () => dialog.close();

  const go = (step) => {
    const next = index + step;
    if (next >= 0 && next < images.length) {
      index = next;
      show();
      // The pressed button was replaced: focus its new self, or Close at either end.
      const again = body.querySelector(`button[data-step="${step}"]:not([disabled])`);
      (again || body.querySelector('button')).focus();
    }
  };

  async function remove(image) {
    const sure = await confirmDialog({
      title: `Delete “${image.filename}”?`,
      body: 'The image and its thumbnail will be deleted for everyone who can see this project. This cannot be undone.',
      confirm: 'Delete image',
    });
    if (!sure) return;
    try {
      await api.deleteImage(image.id);
    } catch (e) {
      announce(explain(e, `delete “${image.filename}”`));
      return;
    }
    announce(`“${image.filename}” deleted.`);
    close();
    onDelete(image);
  }

  function show() {
    const image = images[index];
    const source = SHOWN.has(image.content_type) ? contentUrl(image.id) : thumbnailUrl(image.id);
    const dimensions = image.width && image.height ? `${image.width} × ${image.height} pixels` : 'unknown';
    const fact = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
    const picture = h('img', { src: source, alt: image.filename });
    // An original the page may not load (IMAGE_DOWNLOAD=redirect sends it to the bucket, which
    // the CSP does not name): its thumbnail instead.
    picture.addEventListener('error', () => { picture.src = thumbnailUrl(image.id); }, { once: true });
    fill(body,
      h('div', { class: 'viewer-head' },
        h('h2', { id: 'viewer-title' }, image.filename),
        h('button', { type: 'button', class: 'secondary', 'aria-label': 'Close', on: { click: close } }, '✕')),
      h('figure', {}, picture),
      h('dl', { class: 'facts' },
        fact('Name', image.filename),
        fact('Size', formatBytes(image.size_bytes)),
        fact('Dimensions', dimensions),
        fact('Type', image.content_type),
        fact('Uploaded by', image.uploaded_by),
        fact('Uploaded', formatDate(image.created_at))),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', 'data-step': '-1', disabled: index === 0, on: { click: () => go(-1) } }, '← Previous'),
        h('button', { type: 'button', class: 'secondary', 'data-step': '1', disabled: index === images.length - 1, on: { click: () => go(1) } }, 'Next →'),
        h('a', { class: 'button', href: contentUrl(image.id), download: image.filename }, 'Download'),
        h('button', { type: 'button', class: 'danger', on: { click: () => remove(image) } }, 'Delete image')));
  }

  dialog.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement) return;
    if (e.key === 'ArrowLeft') go(-1);
    if (e.key === 'ArrowRight') go(1);
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (back instanceof HTMLElement && back.isConnected) back.focus();
  });
  show();
  document.body.append(dialog);
  dialog.showModal();
}
