// The web UI's user journeys in a real browser: Debian's Chromium driven by Playwright, through
// the identity layer, nginx, authz and ipm-api that `e2e/tests/it/browser.rs` starts. Every
// page is checked with axe-core (no serious or critical violation) and must run under the
// UI's CSP without a single violation; screenshots of the main pages go to IPM_ARTIFACTS.
//
// Environment: IPM_URL (the identity layer), IPM_USERS (JSON: name -> {cookie, email, group}),
// IPM_ARTIFACTS (a folder), IPM_MAX_UPLOAD_BYTES, CHROMIUM_BIN, BROWSER_MODULES (the
// node_modules that scripts/install-browser.sh fills).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the test through cargo (scripts/test)`);
  return value;
};
const BASE = env('IPM_URL');
const USERS = JSON.parse(env('IPM_USERS'));
const ARTIFACTS = env('IPM_ARTIFACTS');
const MAX_UPLOAD = Number(env('IPM_MAX_UPLOAD_BYTES'));
const modules = createRequire(join(env('BROWSER_MODULES'), 'noop.js'));
const { chromium } = modules('playwright-core');
const AXE = readFileSync(modules.resolve('axe-core/axe.min.js'), 'utf8');
const WAIT = 15_000;

mkdirSync(ARTIFACTS, { recursive: true });
setTimeout(() => {
  console.error('journeys: still running after 4 minutes; giving up');
  process.exit(2);
}, 240_000).unref();

// === images made here: PNGs of a few patterns, so thumbnails have something to show ===

function png(width, height, pixel) {
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) row.set(pixel(x / width, y / height), 1 + x * 3);
    rows.push(row);
  }
  const chunk = (type, data) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const mix = (a, b, t) => a.map((v, i) => Math.round(v + (b[i] - v) * t));
const PICTURES = [
  { name: 'sunset.png', data: png(640, 480, (x, y) => (y > 0.7 ? mix([30, 41, 59], [15, 23, 42], x) : mix([251, 146, 60], [190, 24, 93], y / 0.7))) },
  { name: 'lagoon.png', data: png(480, 640, (x, y) => mix([14, 165, 233], [16, 185, 129], (x + y) / 2)) },
  { name: 'meadow.png', data: png(800, 450, (x, y) => (Math.sin(x * 40) > 0.6 - y ? [101, 163, 13] : mix([187, 247, 208], [22, 101, 52], y))) },
];
const DROPPED = { name: 'dunes.png', data: png(600, 400, (x, y) => mix([253, 230, 138], [180, 83, 9], Math.abs(Math.sin(x * 6 + y * 3)))) };
const TEXT = { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture at all\n') };
const file = (p) => ({ name: p.name, mimeType: 'image/png', buffer: p.data });

// === the harness ===

let browser;
const problems = [];

async function session(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const [name, value] = USERS[user].cookie.split('=');
  await context.addCookies([{ name, value, url: BASE }]);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) {
      problems.push(`${user}: CSP violation: ${m.text()}`);
    }
  });
  return page;
}

async function step(name, body) {
  const started = Date.now();
  await body();
  console.log(`ok: ${name} (${Date.now() - started} ms)`);
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** axe-core in the page (through the debugger, which the page's CSP does not govern). */
async function accessible(page, where) {
  await page.evaluate(`${AXE}\n;void 0`);
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) })));
  for (const v of violations) console.log(`axe (${where}): ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join('; ')}`);
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `serious accessibility violations on ${where}`);
}

const text = async (locator) => (await locator.innerText()).replace(/\s+/g, ' ').trim();

// === the journeys ===

async function owner() {
  const page = await session('alice');
  const alice = USERS.alice;
  let projectUrl;
  let csp;

  await step('alice opens the app and sees who she is, and no project yet', async () => {
    const r = await page.goto(`${BASE}/`);
    assert.equal(r.status(), 200);
    csp = r.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await page.locator('#whoami .email', { hasText: alice.email }).waitFor();
    assert.match(await text(page.locator('#whoami')), new RegExp(alice.group));
    await page.getByText('No projects yet. Create the first one above.').waitFor();
    await accessible(page, 'the empty projects page');
    await screenshot(page, '01-projects-empty');
  });

  await step('alice creates a project in her group with the keyboard alone', async () => {
    await page.getByLabel('Name', { exact: true }).focus();
    await page.keyboard.type('Holiday 2026');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-group');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^\/projects\/[0-9a-f-]{36}$/.test(window.location.pathname));
    await page.getByRole('heading', { level: 1, name: 'Holiday 2026' }).waitFor();
    await page.getByText('No images yet.').waitFor();
    projectUrl = page.url();
    assert.equal(page.url().startsWith(BASE), true);
  });

  await step('alice uploads three images at once with the picker, each with its progress bar', async () => {
    await page.setInputFiles('#file-input', PICTURES.map(file));
    assert.equal(await page.locator('.uploads progress').count() >= 1, true);
    await page.locator('.upload.ok').nth(2).waitFor();
    assert.equal(await page.locator('.upload.ok').count(), 3);
    for (const bar of await page.locator('.upload.ok progress').all()) assert.equal(await bar.getAttribute('value'), '100');
    await page.locator('.grid .tile').nth(2).waitFor();
    // Every thumbnail was made on the server and loads.
    await page.waitForFunction(() => [...document.querySelectorAll('.grid img')].length === 3
      && [...document.querySelectorAll('.grid img')].every((i) => i.complete && i.naturalWidth > 0));
    const widths = await page.$$eval('.grid img', (imgs) => imgs.map((i) => Math.max(i.naturalWidth, i.naturalHeight)));
    assert.deepEqual(widths, [320, 320, 320]);
    assert.equal(await text(page.locator('#images-title .count')), '3 images');
  });

  await step('alice drops an image on the drop zone', async () => {
    const dropped = await page.evaluateHandle(({ name, b64 }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'image/png' }));
      return dt;
    }, { name: DROPPED.name, b64: DROPPED.data.toString('base64') });
    await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: dropped });
    await page.locator('.upload.ok').nth(3).waitFor();
    await page.locator('.grid .tile .caption', { hasText: DROPPED.name }).waitFor();
    assert.equal(await text(page.locator('#images-title .count')), '4 images');
  });

  await step('a file that is not an image is refused, and the page says so', async () => {
    await page.setInputFiles('#file-input', [TEXT]);
    const refused = page.locator('.upload.failed', { hasText: 'notes.txt' });
    await refused.waitFor();
    assert.match(await text(refused), /Could not upload “notes.txt”: it is not an image the server accepts\. Upload PNG, JPEG, GIF, WebP, TIFF or AVIF files\./);
    assert.equal(await page.locator('.grid .tile').count(), 4);
    await screenshot(page, '03-upload-refused');
  });

  await step('a file over the size limit is refused as too large', async () => {
    const big = Buffer.concat([PICTURES[0].data, Buffer.alloc(MAX_UPLOAD + 1024, 7)]);
    await page.setInputFiles('#file-input', [{ name: 'huge.png', mimeType: 'image/png', buffer: big }]);
    const refused = page.locator('.upload.failed', { hasText: 'huge.png' });
    await refused.waitFor();
    const limit = Math.floor(MAX_UPLOAD / (1024 * 1024));
    assert.match(await text(refused), new RegExp(`the file is too large \\(the limit is ${limit} MiB\\)`));
  });

  await step('the project has its own address: a reload shows it again', async () => {
    await page.goto(projectUrl);
    await page.getByRole('heading', { level: 1, name: 'Holiday 2026' }).waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll('.grid img')].length === 4
      && [...document.querySelectorAll('.grid img')].every((i) => i.complete && i.naturalWidth > 0));
    // Thumbnails are cached by the browser and revalidated by their ETag.
    const thumb = await page.locator('.grid img').first().getAttribute('src');
    const r = await page.request.get(`${BASE}${thumb}`);
    assert.equal(r.status(), 200);
    assert.match(r.headers()['cache-control'], /private, max-age=\d+/);
    assert.ok(r.headers().etag);
    const again = await page.request.get(`${BASE}${thumb}`, { headers: { 'If-None-Match': r.headers().etag } });
    assert.equal(again.status(), 304);
    await accessible(page, 'the project page');
    await screenshot(page, '02-project');
  });

  await step('alice opens an image from the keyboard: the larger view with its metadata and download', async () => {
    // Uploads run side by side: the grid's order is the order they started in.
    const names = await page.$$eval('.grid .caption', (c) => c.map((e) => e.textContent));
    const at = names.indexOf('sunset.png');
    await page.locator('.grid .thumb', { hasText: 'sunset.png' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'sunset.png' });
    await dialog.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector('dialog.viewer figure img');
      return img && img.complete && img.naturalWidth === 640;
    });
    const facts = await text(dialog.locator('dl'));
    for (const fact of ['Name sunset.png', 'Dimensions 640 × 480 pixels', `Uploaded by ${alice.email}`, 'Type image/png']) {
      assert.ok(facts.includes(fact), `${fact} in ${facts}`);
    }
    assert.match(facts, /Size \d+(\.\d)? KB/);
    await accessible(page, 'the image view');
    await screenshot(page, '04-image');
    const [download] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('link', { name: 'Download' }).click()]);
    assert.equal(download.suggestedFilename(), 'sunset.png');
    const saved = readFileSync(await download.path());
    assert.ok(saved.equals(PICTURES[0].data), 'the download is the uploaded file, byte for byte');
    const last = at === names.length - 1;
    await page.keyboard.press(last ? 'ArrowLeft' : 'ArrowRight');
    await page.getByRole('dialog', { name: names[last ? at - 1 : at + 1] }).waitFor();
    await page.keyboard.press('Escape');
    await page.locator('dialog.viewer').waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement.closest('.tile') !== null), true);
  });

  await step('alice deletes an image after confirming', async () => {
    await page.locator('.grid .thumb', { hasText: 'meadow.png' }).click();
    await page.getByRole('dialog', { name: 'meadow.png' }).getByRole('button', { name: 'Delete image' }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete “meadow.png”?' });
    await confirm.waitFor();
    await accessible(page, 'the confirmation');
    await confirm.getByRole('button', { name: 'Delete image' }).click();
    await page.locator('.grid .tile', { hasText: 'meadow.png' }).waitFor({ state: 'detached' });
    assert.equal(await text(page.locator('#images-title .count')), '3 images');
  });

  await step('alice renames the project from its page, then from the list', async () => {
    await page.getByRole('button', { name: 'Rename project' }).click();
    await page.getByLabel('New name for “Holiday 2026”').fill('Summer 2026');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { level: 1, name: 'Summer 2026' }).waitFor();
    await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('heading', { level: 1, name: 'Projects' }).waitFor();
    await page.getByRole('button', { name: 'Rename Summer 2026' }).click();
    const input = page.getByLabel('New name for “Summer 2026”');
    await input.fill('Summer trip 2026');
    await input.press('Enter');
    await page.getByRole('link', { name: 'Summer trip 2026' }).waitFor();
    await accessible(page, 'the projects page');
    await screenshot(page, '00-projects');
  });

  await step('alice deletes a project only once she confirms', async () => {
    await page.getByLabel('Name', { exact: true }).fill('Scratch');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { level: 1, name: 'Scratch' }).waitFor();
    await page.goBack();
    await page.getByRole('link', { name: 'Scratch' }).waitFor();
    await page.getByRole('button', { name: 'Delete Scratch' }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete “Scratch”?' });
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('link', { name: 'Scratch' }).count(), 1, 'cancel keeps it');
    await page.getByRole('button', { name: 'Delete Scratch' }).click();
    await confirm.getByRole('button', { name: 'Delete project' }).click();
    await page.getByRole('link', { name: 'Scratch' }).waitFor({ state: 'detached' });
    await page.reload();
    await page.getByRole('link', { name: 'Summer trip 2026' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Scratch' }).count(), 0);
  });

  await step('an upload to a project deleted meanwhile says it is gone', async () => {
    await page.getByLabel('Name', { exact: true }).fill('Short-lived');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { level: 1, name: 'Short-lived' }).waitFor();
    const gone = await page.request.delete(`${BASE}/api/projects/${page.url().split('/').pop()}`);
    assert.equal(gone.status(), 204);
    await page.setInputFiles('#file-input', [file(PICTURES[1])]);
    const refused = page.locator('.upload.failed');
    await refused.waitFor();
    // authz may still hold the project's group for a moment (its entity cache): then the API
    // says it is gone; otherwise nginx refuses it.
    assert.match(await text(refused), /Could not upload “lagoon\.png”: (the project no longer exists, or you no longer have access to it|you are not allowed to, or it no longer exists)\./);
  });

  return { projectUrl, csp };
}

async function readOnlyMember({ projectUrl }) {
  const page = await session('bob');
  await step('bob, whom a policy forbids to upload, is told so', async () => {
    await page.goto(projectUrl);
    await page.getByRole('heading', { level: 1, name: 'Summer trip 2026' }).waitFor();
    // The images arrive after the heading: the page is whole once its three tiles are there.
    const tiles = () => page.waitForFunction(() => document.querySelectorAll('.grid .tile').length === 3);
    await tiles();
    await page.setInputFiles('#file-input', [file(PICTURES[2])]);
    const refused = page.locator('.upload.failed');
    await refused.waitFor();
    assert.match(await text(refused), /Could not upload “meadow\.png”: you are not allowed to, or it no longer exists\./);
    await tiles();
    assert.equal(await page.locator('.grid .tile').count(), 3, 'the refused upload added no tile');
  });
}

async function otherGroup({ projectUrl }) {
  const page = await session('carol');
  const carol = USERS.carol;
  await step('carol, of another group, sees nothing of alice\'s', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#whoami .email', { hasText: carol.email }).waitFor();
    await page.getByText('No projects yet. Create the first one above.').waitFor();
    assert.equal(await page.getByText('Summer trip 2026').count(), 0);
    await screenshot(page, '05-other-group');
    await page.goto(projectUrl);
    await page.getByRole('heading', { level: 1, name: 'Project not available' }).waitFor();
    assert.match(await text(page.locator('main')), /This project does not exist, or you do not have access to it\./);
    assert.equal(await page.getByText('Summer trip 2026').count(), 0);
    await accessible(page, 'a project of another group');
    const id = projectUrl.split('/').pop();
    for (const path of [`/api/projects/${id}`, `/api/projects/${id}/images`]) {
      assert.ok([403, 404].includes((await page.request.get(`${BASE}${path}`)).status()), path);
    }
  });
}

try {
  browser = await chromium.launch({
    executablePath: env('CHROMIUM_BIN'),
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const found = await owner();
  await readOnlyMember(found);
  await otherGroup(found);
  assert.deepEqual(problems, [], 'no page error and no CSP violation');
  console.log(`journeys: all passed; screenshots in ${ARTIFACTS}`);
} catch (e) {
  console.error(`journeys: FAILED: ${e.stack || e}`);
  for (const p of problems) console.error(p);
  for (const context of browser ? browser.contexts() : []) {
    for (const [i, page] of context.pages().entries()) {
      await page.screenshot({ path: join(ARTIFACTS, `failure-${i}.png`) }).catch(() => {});
    }
  }
  process.exitCode = 1;
} finally {
  await browser?.close();
}
