// The API, as the UI calls it: JSON in and out, and failures as `ApiError`s whose message says
// what happened and what to do, in the words of what was being done.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.reason = body && body.reason;
    this.field = body && body.field;
    this.detail = body && body.message;
    this.retryAfter = retryAfter;
  }
}

function parse(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  const data = parse(await r.text());
  if (!r.ok) throw new ApiError(r.status, data, Number(r.headers.get('Retry-After')) || 0);
  return data;
}

const page = (cursor) => (cursor ? `?cursor=${encodeURIComponent(cursor)}` : '');
const id = (value) => encodeURIComponent(value);

export const api = {
  me: () => call('GET', '/api/me'),
  projects: (cursor) => call('GET', `/api/projects${page(cursor)}`),
  project: (p) => call('GET', `/api/projects/${id(p)}`),
  createProject: (name, group) => call('POST', '/api/projects', { name, meta_group_id: group }),
  renameProject: (p, name) => call('PATCH', `/api/projects/${id(p)}`, { name }),
  deleteProject: (p) => call('DELETE', `/api/projects/${id(p)}`),
  images: (p, cursor) => call('GET', `/api/projects/${id(p)}/images${page(cursor)}`),
  deleteImage: (i) => call('DELETE', `/api/images/${id(i)}`),
};

export const contentUrl = (i) => `/api/images/${id(i)}/content`;
export const thumbnailUrl = (i) => `/api/images/${id(i)}/thumbnail`;

/**
 * Uploads one file as a multipart form; `progress(fraction)` follows the bytes sent. Resolves
 * with the stored image, rejects with an `ApiError`.
 */
export function upload(project, file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/projects/${id(project)}/images`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) progress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      const data = parse(xhr.responseText);
      if (xhr.status === 201) resolve(data);
      else reject(new ApiError(xhr.status, data, Number(xhr.getResponseHeader('Retry-After')) || 0));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, null)));
    xhr.addEventListener('abort', () => reject(new ApiError(0, null)));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

const MIB = 1024 * 1024;

/** What to tell the user about `error` while doing `what` ("upload “a.png”"). */
export function explain(error, what) {
  const s = error instanceof ApiError ? error.status : 0;
  switch (s) {
    case 0:
      return `Could not ${what}: the server cannot be reached. Check your connection and try again.`;
    case 401:
      return `Could not ${what}: you are signed out. Reload the page to sign in again.`;
    case 403:
      if (error.reason === 'cross_site_request') {
        return `Could not ${what}: the request was refused as coming from another site. Reload the page and try again.`;
      }
      // The proxy answers 403 for what does not exist as for what is not allowed, alike.
      return `Could not ${what}: you are not allowed to, or it no longer exists. Reload the page to see what you may do, or ask for access.`;
    case 404:
      if (error.reason === 'image_not_found') {
        return `Could not ${what}: the image no longer exists, or you no longer have access to it.`;
      }
      return `Could not ${what}: the project no longer exists, or you no longer have access to it.`;
    case 409:
      return `Could not ${what}: another project in this group already has that name. Choose another name.`;
    case 413: {
      const limit = /limit of (\d+) bytes/.exec(error.detail || '');
      const size = limit ? ` (the limit is ${Math.floor(Number(limit[1]) / MIB)} MiB)` : '';
      return `Could not ${what}: the file is too large${size}. Make it smaller and try again.`;
    }
    case 415:
      return `Could not ${what}: it is not an image the server accepts. Upload PNG, JPEG, GIF, WebP, TIFF or AVIF files.`;
    case 422:
      return `Could not ${what}: ${error.detail || 'the input is not valid'}.`;
    case 429:
    case 503:
      return `Could not ${what}: the server is busy. Try again in a moment.`;
    default:
      return `Could not ${what}: the server answered ${s}. Try again, and tell your administrator if it keeps happening.`;
  }
}
