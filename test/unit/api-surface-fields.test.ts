/** Create and update fields beside config, through the API in process: default image, logo, auto_stop_seconds, desktop refused, not-supported products. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './api-harness.ts';
import { normalizeWorkspaceBody } from '../../src/api/routes/workspace-fields.ts';
import { parseNetworkUpdate } from '../../src/api/routes/network-modes.ts';

test('a create without an image gets the default; logo and auto_stop_seconds land in config; hostile logos are refused', async () => {
  const api = await startApi();
  try {
    const c = await api.call('POST', '/workspace', api.admin, { name: 'x', logo: 'https://e.example/l.png', auto_stop_seconds: 600 });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    assert.equal(c.json.workspace.image, 'debian-12');
    assert.equal(c.json.workspace.logo, 'https://e.example/l.png');
    assert.equal(c.json.workspace.config.auto_stop_seconds, 600);
    for (const logo of ['javascript:alert(1)', 'data:text/html,x', 'file:///etc/passwd', 'not a url', 42]) {
      const r = await api.call('PUT', `/workspace/${c.json.workspace.id}`, api.admin, { logo });
      assert.equal(r.status, 400, String(logo));
    }
    const cleared = await api.call('PUT', `/workspace/${c.json.workspace.id}`, api.admin, { logo: null, auto_stop_seconds: 0 });
    assert.deepEqual([cleared.json.workspace.logo, cleared.json.workspace.auto_stop_seconds], [null, null]);
    const desk = await api.call('POST', '/workspace', api.admin, { image: 'debian-12', config: { desktop: { enabled: true } } });
    assert.deepEqual([desk.status, desk.json.code], [501, 'not_supported']);
    for (const p of ['/pages', '/cdn/files', '/webhooks', '/notifications/devices', '/edge/tunnels', '/billing/portal']) {
      const r = await api.call('GET', p, {});
      assert.deepEqual([r.status, r.json.code, r.json.success], [501, 'not_supported', false], p);
    }
  } finally {
    await api.close();
  }
});

test('network.update bodies: firewall fields pass, BYOP and private links are not_supported, unknown fields refused', () => {
  assert.deepEqual(parseNetworkUpdate({ allow_internet: false, public_access: true, outbound_mode: 'managed', private_link_ids: [] }), { config: { allow_internet: false }, publicAccess: true });
  assert.throws(() => parseNetworkUpdate({ outbound_mode: 'custom' }), /not offered/);
  assert.throws(() => parseNetworkUpdate({ custom_proxy: { host: '1.2.3.4', port: 1 } }), /not offered/);
  assert.throws(() => parseNetworkUpdate({ private_link_ids: ['ws_a'] }), /private links/);
  assert.throws(() => parseNetworkUpdate({ outbound_mode: 'weird' }), /managed/);
  assert.throws(() => parseNetworkUpdate({ public_access: 'yes' }), /true or false/);
  assert.throws(() => parseNetworkUpdate({ bogus: 1 }), /unknown network field/);
  assert.equal(normalizeWorkspaceBody({}, { create: true, defaultImage: 'node-20', minIdleSeconds: 120 }).image, 'node-20');
  assert.throws(() => normalizeWorkspaceBody({ auto_stop_seconds: 5 }, { create: false, defaultImage: 'x', minIdleSeconds: 120 }), /between 120/);
});
