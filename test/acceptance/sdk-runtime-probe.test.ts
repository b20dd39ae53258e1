import { test, before, after } from 'node:test';
import { Oblien, Runtime } from 'oblien';
import WebSocket from 'ws';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';

(globalThis as any).WebSocket ??= WebSocket;
let h: HearthInstance;
let client: Oblien;
before(async () => {
  h = await startHearth({ extraArgs: ['--log-level', 'warn'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function time(label: string, n: number, f: () => Promise<unknown>) {
  const s: number[] = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); await f(); s.push(performance.now() - t); }
  s.sort((a, b) => a - b);
  console.log(label, 'p50', s[n >> 1]!.toFixed(2), 'min', s[0]!.toFixed(2), 'max', s[n - 1]!.toFixed(2));
}

test('probe', async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as any;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as any;
  const rt = new Runtime({ token, baseUrl: h.runtime });
  const raw = await client.workspaces.apiAccess.rawToken(ws.id) as any;
  const direct = new Runtime({ token: raw.token, baseUrl: `http://${raw.ip}:${raw.port}` });
  await time('gw health', 50, () => rt.health());
  await time('direct health', 50, () => direct.health());
  await time('gw exec', 30, () => rt.exec.run(['true']));
  await time('direct exec', 30, () => direct.exec.run(['true']));
  await time('direct exec sh', 30, () => direct.exec.run(['sh', '-c', 'true']));
  const r = await direct.exec.run(['true']);
  console.log(r);
});
