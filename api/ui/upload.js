// Uploading into a project: files from the picker or dropped on the zone, three at a time,
// each with its own progress bar and, when refused, a message that says why and what to do.

import { explain, upload } from './api.js';
import { announce, formatBytes, h } from './dom.js';

const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,image/tiff,image/avif';
const AT_ONCE = 3;
const RETRIES = 3;

function row(file) {
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload of ${file.name}` });
  const status = h('span', { class: 'upload-status' }, 'Waiting…');
  const el = h('li', { class: 'upload' },
    h('span', { class: 'upload-name' }, file.name, ' ', h('span', { class: 'meta' }, `(${formatBytes(file.size)})`)),
    bar, status);
  return {
    el,
    progress: (fraction) => {
      bar.value = Math.round(fraction * 100);
      status.textContent = fraction < 1 ? `${bar.value} %` : 'Making the thumbnail…';
    },
    start: () => { status.textContent = 'Uploading…'; },
    waiting: (seconds) => { status.textContent = `The server is busy; trying again in ${seconds} s…`; },
    done: () => {
      bar.value = 100;
      el.classList.add('ok');
      status.textContent = 'Uploaded';
    },
    fail: (message) => {
      el.classList.add('failed');
      bar.remove();
      status.setAttribute('role', 'alert');
      status.textContent = message;
    },
  };
}

export function uploader(project, { onUploaded }) {
  const input = h('input', { type: 'file', id: 'file-input', multiple: true, accept: ACCEPT, class: 'visually-hidden' });
  const list = h('ul', { class: 'uploads', 'aria-label': 'Uploads', 'aria-live': 'polite' });
  const zone = h('div', { class: 'drop', id: 'drop-zone' },
    h('p', {}, 'Drag images here, or ', input, h('label', { for: 'file-input', class: 'button' }, 'choose files')),
    h('p', { class: 'hint' }, 'PNG, JPEG, GIF, WebP, TIFF or AVIF; several at once.'));
  const queue = [];
  let running = 0;
  let batch = { ok: 0, failed: 0 };

  const finished = () => {
    if (running || queue.length) return;
    const { ok, failed } = batch;
    batch = { ok: 0, failed: 0 };
    const count = (n, what) => (n === 1 ? `1 ${what}` : `${n} ${what}s`);
    announce(failed ? `${count(ok, 'image')} uploaded, ${count(failed, 'file')} refused.` : `${count(ok, 'image')} uploaded.`);
  };

  const run = async (job, attempt = 0) => {
    job.row.start();
    try {
      const image = await upload(project.id, job.file, job.row.progress);
      job.row.done();
      batch.ok += 1;
      onUploaded(image);
    } catch (e) {
      if ((e.status === 429 || e.status === 503) && attempt < RETRIES) {
        const seconds = Math.min(e.retryAfter || 2, 30);
        job.row.waiting(seconds);
        await new Promise((resolve) => { setTimeout(resolve, seconds * 1000); });
        await run(job, attempt + 1);
        return;
      }
      job.row.fail(explain(e, `upload “${job.file.name}”`));
      batch.failed += 1;
    }
  };

  const pump = () => {
    while (running < AT_ONCE && queue.length) {
      const job = queue.shift();
      running += 1;
      run(job).finally(() => {
        running -= 1;
        pump();
        finished();
      });
    }
  };

  const enqueue = (files) => {
    for (const file of files) {
      const job = { file, row: row(file) };
      list.append(job.row.el);
      queue.push(job);
    }
    pump();
  };

  input.addEventListener('change', () => {
    enqueue([...input.files]);
    input.value = '';
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) enqueue([...e.dataTransfer.files]);
  });

  return h('section', { class: 'panel', 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title' }, 'Upload images'), zone, list);
}
