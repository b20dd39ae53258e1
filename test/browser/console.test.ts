/**
 * The web console in Debian's Chromium against a real `hearth serve`:
 * a wrong key refused with a clear message; sign in; a workspace created
 * through the SDK appearing in the list without a reload; a workspace page
 * opened by URL; `echo` in the terminal; browsing and uploading a file;
 * the metrics chart drawing new points; exposing a port and following the
 * link through the edge; sign out. Every page's uncaught errors and console
 * errors fail the test they happen in; a failing test leaves screenshots in
 * the test output directory.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Oblien } from 'oblien';
import type { BrowserContext } from 'playwright-core';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { runtimeFor } from '../helpers/runtime-sdk.ts';
import { WORKSPACE_SERVER_JS } from '../helpers/public-plane.ts';
import { Browsing, chromiumMissing, type Watched } from './browser.ts';

const skip = needsRoot || await chromiumMissing();

let h: HearthInstance;
let client: Oblien;
let b: Browsing;
let ctx: BrowserContext;
let tab: Watched;
let consoleUrl: string;
let wsId: string;

before(async () => {
  if (skip) return;
  // Preview URLs under *.localhost: Chromium resolves those to loopback by itself, where the edge listens.
  h = await startHearth({ extraArgs: ['--edge-tls-listen', 'off', '--ssh-listen', 'off', '--preview-domain', 'preview.localhost'] });
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8')) as { console: string };
  consoleUrl = ep.console;
  assert.equal(consoleUrl, `${h.api}/console/`, 'endpoints.json names the console');
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  b = await Browsing.launch();
  ctx = await b.context();
  tab = await b.page(ctx);
});

after(async () => {
  await b?.close();
  if (h) await h.stop();
});

const opts = { skip, timeout: 120_000 };

test('a wrong key is refused with a clear message, and nothing is signed in', opts, () => b.run('wrong key', async () => {
  const { page } = tab;
  // The refused sign-in's 401 is logged by Chromium as a console error: that one is expected.
  tab.allow.push(/status of 401/);
  await page.goto(consoleUrl);
  await page.getByLabel('Client ID').fill(h.clientId);
  await page.getByLabel('Client secret').fill('hs_not-the-secret');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Sign-in refused' }).waitFor();
  assert.match(await page.getByRole('alert').innerText(), /do not match a live API key/);
  assert.deepEqual((await ctx.cookies()).filter((c) => c.name === 'hearth_console'), []);
  tab.allow.pop();
}));

test('sign in; a workspace created through the SDK appears in the list within 2 s, without a reload', opts, () => b.run('sign in and live list', async () => {
  const { page } = tab;
  await page.getByLabel('Client secret').fill(h.clientSecret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Workspaces' }).waitFor();
  await page.getByText('No workspaces yet.').waitFor();
  const made = await client.workspaces.create({ image: 'node-20', name: 'console-e2e', config: { ttl: '15m' } } as never) as Record<string, any>;
  wsId = made.id;
  const t0 = Date.now();
  await page.locator(`tr[data-id="${wsId}"]`).waitFor({ timeout: 2000 });
  process.stderr.write(`listed ${Date.now() - t0} ms after the SDK's create returned\n`);
  const row = page.locator(`tr[data-id="${wsId}"]`);
  assert.match(await row.innerText(), /console-e2e/);
  assert.match(await row.innerText(), /node-20/);
  await waitUntil('the row to say running', async () => /running/.test(await row.innerText()), 60_000, 200);
  // Search narrows the table.
  await page.getByLabel('Search workspaces').fill('no-such-workspace');
  await page.getByText('No workspace matches.').waitFor();
  await page.getByLabel('Search workspaces').fill('console-e2e');
  await row.waitFor();
}));

test('a workspace page opened by its URL; `echo` in the terminal prints its output', opts, () => b.run('terminal', async () => {
  const { page } = tab;
  await page.goto(`${consoleUrl}w/${wsId}/terminal`);
  await page.getByRole('heading', { name: 'console-e2e' }).waitFor();
  await page.locator('[data-state="connected"]').waitFor({ timeout: 20_000 });
  await page.locator('.xterm').click();
  await page.keyboard.type('echo "hearth-$((6 * 7))"\n');
  await waitUntil('the echo output in the terminal', async () => (await page.locator('.xterm-rows').innerText()).includes('hearth-42'), 15_000, 100);
  // Reload: the same shell comes back with its scrollback.
  await page.reload();
  await page.locator('[data-state="connected"]').waitFor({ timeout: 20_000 });
  await waitUntil('the scrollback after a reload', async () => (await page.locator('.xterm-rows').innerText()).includes('hearth-42'), 15_000, 100);
}));

test('files: browse to a directory, upload a file, open it, edit and save it', opts, () => b.run('files', async () => {
  const { page } = tab;
  await page.getByRole('link', { name: 'Files' }).click();
  assert.match(page.url(), new RegExp(`/console/w/${wsId}/files$`));
  // The tab's first listing (its start directory) lands before the path is changed.
  await page.locator('table[data-listed]').waitFor();
  await page.getByLabel('Path').fill('/tmp');
  await page.getByRole('button', { name: 'Go', exact: true }).click();
  await page.locator('table[data-listed="/tmp"]').waitFor();
  await page.getByLabel('Upload files').setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('uploaded from the console\n') });
  const row = page.locator('tr[data-name="hello.txt"]');
  await row.waitFor();
  const { rt } = await runtimeFor(client, h, wsId);
  assert.equal((await rt.files.read({ filePath: '/tmp/hello.txt' }) as any).content, 'uploaded from the console\n');
  await row.getByRole('button', { name: 'hello.txt' }).click();
  const editor = page.getByLabel('Contents of /tmp/hello.txt');
  assert.equal(await editor.inputValue(), 'uploaded from the console\n');
  await editor.fill('edited in the browser\n');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await waitUntil('the edit to reach the workspace', async () => (await rt.files.read({ filePath: '/tmp/hello.txt' }) as any).content === 'edited in the browser\n', 10_000, 100);
  // Up to / and into a directory by clicking it.
  await page.getByRole('button', { name: 'Up', exact: true }).click();
  await page.getByRole('button', { name: 'etc/' }).click();
  await page.locator('tr[data-name="hostname"]').waitFor();
}));

test('metrics: the CPU chart draws new points as the stream brings them', opts, () => b.run('metrics', async () => {
  const { page } = tab;
  await page.getByRole('link', { name: 'Metrics' }).click();
  const cpu = page.locator('figure[data-chart="CPU"]');
  await cpu.waitFor();
  const points = async () => Number(await cpu.getAttribute('data-points'));
  const first = await waitUntil('a first point', async () => (await points()) >= 1 && points(), 20_000, 100);
  await waitUntil('two more points', async () => (await points()) >= first + 2, 20_000, 100);
  // uPlot drew them: its canvas exists with the chart's size.
  assert.ok(await cpu.locator('canvas').count() >= 1);
  for (const name of ['Memory', 'Disk', 'Network']) assert.ok(Number(await page.locator(`figure[data-chart="${name}"]`).getAttribute('data-points')) >= 1, name);
}));

test('public access: expose a port and follow the link to the workspace server', opts, () => b.run('expose', async () => {
  const { page } = tab;
  const { rt } = await runtimeFor(client, h, wsId);
  await rt.files.write({ fullPath: '/app/server.js', content: WORKSPACE_SERVER_JS });
  const r = await rt.exec.run(['sh', '-c', 'PORT=3000 nohup node /app/server.js >/tmp/server.log 2>&1 &']);
  assert.equal(r.exit_code, 0, r.stderr);
  await waitUntil('the server to listen', async () => (await rt.exec.run(['cat', '/tmp/server.log'])).stdout?.includes('listening'), 20_000, 100);

  await page.getByRole('link', { name: 'Public access' }).click();
  await page.getByText('No port is exposed.').waitFor();
  await page.getByLabel('Port', { exact: true }).fill('3000');
  await page.getByRole('button', { name: 'Expose' }).click();
  const link = page.locator('tr[data-port="3000"] a.public-url');
  await link.waitFor();
  const href = await link.getAttribute('href');
  assert.match(href ?? '', /^http:\/\/[a-z0-9]+\.preview\.localhost:\d+$/);
  const [popup] = await Promise.all([ctx.waitForEvent('page'), link.click()]);
  await popup.waitForLoadState();
  assert.match(await popup.locator('body').innerText(), /hello from .* port 3000 GET/);
  await popup.close();
  // Revoke (no confirmation: exposing again is one click): the row goes.
  await page.locator('tr[data-port="3000"]').getByRole('button', { name: 'Revoke' }).click();
  await page.getByText('No port is exposed.').waitFor();
}));

test('phone-sized: the list and a workspace page lay out and stay usable', opts, () => b.run('phone', async () => {
  const phone = await b.context({ width: 390, height: 844 });
  const w = await b.page(phone);
  await phone.addCookies((await ctx.cookies()).map((c) => ({ ...c })));
  await w.page.goto(consoleUrl);
  await w.page.locator(`tr[data-id="${wsId}"]`).waitFor();
  const width = await w.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390 + 1, `no sideways scroll at phone width (page is ${width} px wide)`);
  await w.page.locator(`tr[data-id="${wsId}"] a`).click();
  await w.page.getByRole('heading', { name: 'console-e2e' }).waitFor();
  await phone.close();
}));

test('every other tab and page opens without an error: workloads, network, SSH, snapshots, metadata, activity, namespaces, keys', opts, () => b.run('other tabs', async () => {
  const { page } = tab;
  for (const t of ['overview', 'workloads', 'network', 'ssh', 'snapshots', 'metadata', 'activity']) {
    await page.goto(`${consoleUrl}w/${wsId}${t === 'overview' ? '' : `/${t}`}`);
    await page.getByRole('heading', { name: 'console-e2e' }).waitFor();
    await page.locator('.tab-body').waitFor();
    await waitUntil(`the ${t} tab to load`, async () => !(await page.locator('.tab-body').innerText()).includes('Loading…'), 10_000, 100);
    assert.equal(await page.getByRole('alert').count(), 0, `${t}: ${await page.getByRole('alert').allInnerTexts()}`);
  }
  await page.goto(`${consoleUrl}w/${wsId}/metadata`);
  await page.getByLabel('Metadata').fill('{"team": "console"}');
  await page.getByRole('button', { name: 'Save metadata' }).click();
  await waitUntil('the metadata through the SDK', async () => JSON.stringify(await client.workspaces.metadata.get(wsId)).includes('console'), 10_000, 200);
  for (const [where, heading] of [['namespaces', 'Namespaces'], ['keys', 'Keys & tokens']]) {
    await page.goto(`${consoleUrl}${where}`);
    await page.getByRole('heading', { name: heading, exact: true }).waitFor();
    await page.waitForTimeout(300);
    assert.equal(await page.getByRole('alert').count(), 0, `${where}: ${await page.getByRole('alert').allInnerTexts()}`);
  }
  await page.locator(`text=${h.clientId}`).first().waitFor();
}));

test('the create dialog makes a workspace, and bulk delete removes the checked rows', opts, () => b.run('create and bulk', async () => {
  const { page } = tab;
  await page.goto(consoleUrl);
  await page.getByRole('button', { name: 'Create workspace' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a workspace' });
  await dialog.getByLabel('Name').fill('from-dialog');
  await dialog.getByLabel('TTL').fill('10m');
  await dialog.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: 'from-dialog' }).waitFor({ timeout: 60_000 });
  const id = new URL(page.url()).pathname.split('/')[3]!;
  const made = await client.workspaces.get(id) as any;
  assert.equal(made.name, 'from-dialog');
  assert.equal(made.mode, 'temporary');
  await page.getByRole('link', { name: '← Workspaces' }).click();
  await page.locator(`tr[data-id="${id}"]`).waitFor();
  await page.getByLabel('Select from-dialog').check();
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Delete 1' }).click();
  await page.locator(`tr[data-id="${id}"]`).waitFor({ state: 'detached', timeout: 30_000 });
  await page.locator(`tr[data-id="${wsId}"]`).waitFor();
}));

test('sign out: the session ends, the page asks for a key again, and the old cookie opens nothing', opts, () => b.run('sign out', async () => {
  const { page } = tab;
  const cookie = (await ctx.cookies()).find((c) => c.name === 'hearth_console')!;
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal((await ctx.cookies()).some((c) => c.name === 'hearth_console' && c.value), false);
  const res = await fetch(`${h.api}/console/api/workspace`, { headers: { cookie: `hearth_console=${cookie.value}` } });
  assert.equal(res.status, 401);
  assert.equal(((await res.json()) as any).code, 'missing_credentials');
}));
