/**
 * The official MCP server (node_modules/oblien/dist/mcp/index.js) driven by
 * @modelcontextprotocol/sdk's Client over stdio against a real `hearth
 * serve`: every `workspace_*` tool it registers is called, in an order that
 * is also a seed flow (create, run a workload, expose it, snapshot, …,
 * delete). A tool answers for real, or with the clear error listed for it
 * here; never "no route" (404) or an internal error (500).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
let h: HearthInstance;
let mcp: Client;
let home: string;

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--edge-listen', '127.0.0.1:0', '--edge-tls-listen', '127.0.0.1:0', '--ssh-listen', '127.0.0.1:0'] });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-mcp-home-'));
  const transport = new StdioClientTransport({
    command: process.execPath, args: [path.join(repo, 'node_modules/oblien/dist/mcp/index.js')],
    env: { PATH: process.env.PATH ?? '', HOME: home, OBLIEN_BASE_URL: h.api, OBLIEN_CLIENT_ID: h.clientId, OBLIEN_CLIENT_SECRET: h.clientSecret,
      HEARTH_RUNTIME_URL: h.runtime, NODE_OPTIONS: `--import ${path.join(repo, 'sdk/preload.mjs')}` },
    stderr: 'pipe',
  });
  mcp = new Client({ name: 'hearth-surface', version: '1.0.0' });
  await mcp.connect(transport);
});
after(async () => {
  await mcp?.close();
  if (h) await h.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

/** Tools whose clear refusal here is the right answer, with the message it must carry. */
const EXPECTED_ERRORS: Record<string, RegExp> = {
  workspace_network_set_custom_proxy: /custom outbound proxy .* not offered/,
  // 192.0.2.1 is not an address of this host: refused, not applied.
  workspace_network_ip: /not an address of this host|outbound/i,
};

test('every MCP workspace_* tool answers for real through the official MCP server', { skip: needsRoot }, async (t) => {
  const tools = (await mcp.listTools()).tools.map((x) => x.name).filter((n) => n.startsWith('workspace_'));
  assert.ok(tools.length >= 80, `the MCP server lists ${tools.length} workspace tools`);
  const called = new Set<string>();
  const failures: string[] = [];
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<any> => {
    called.add(name);
    const r = await mcp.callTool({ name, arguments: args }) as { isError?: boolean; content: { text: string }[] };
    const text = r.content[0]?.text ?? '';
    const expected = EXPECTED_ERRORS[name];
    if (r.isError) {
      if (!expected || !expected.test(text)) failures.push(`${name}: ${text.slice(0, 200)}`);
      return null;
    }
    if (expected) failures.push(`${name}: expected a refusal matching ${expected}, got success`);
    try { return JSON.parse(text); } catch { return text; }
  };

  for (const n of ['workspace_images', 'workspace_list', 'workspace_usage_global', 'workspace_quota']) await call(n);
  await call('workspace_estimate', { cpu: 1, ram_mb: 512, disk_mb: 1024 });
  const created = await call('workspace_create', { image: 'node-20', name: 'mcp-seed', vcpus: 1, ram_mb: 256, disk_mb: 512 });
  const id = (created?.workspace?.id ?? created?.id) as string;
  assert.match(String(id), /^ws_/, JSON.stringify(created));
  const w = { workspace_id: id };
  await call('workspace_get', w);
  await call('workspace_update', { ...w, name: 'mcp-seed-2', auto_stop_seconds: 3600 });
  const got = await call('workspace_get', w);
  assert.equal(got?.name ?? got?.workspace?.name, 'mcp-seed-2', 'update honoured');
  assert.equal(got?.auto_stop_seconds ?? got?.workspace?.auto_stop_seconds, 3600, 'auto_stop_seconds honoured');
  await call('workspace_activity');

  // Resources and disk.
  await call('workspace_resources_get', w);
  const resized = await call('workspace_resources_update', { ...w, memory_mb: 384 });
  assert.equal(resized?.updated?.memory_mb, 384);
  await call('workspace_disk_list', w);
  const usage = await call('workspace_disk_usage', w);
  assert.ok(usage?.total_bytes > 0);
  await call('workspace_disk_resize', { ...w, size_mb: 640 });
  await call('workspace_disk_sync', w);

  // Workloads, logs, metrics.
  const wl = await call('workspace_workload_create', { ...w, name: 'web', cmd: ['node', '-e', "require('http').createServer((q,s)=>s.end('mcp')).listen(3000)"] });
  const wid = (wl?.workload?.id ?? wl?.id) as string;
  const ww = { ...w, workload_id: wid };
  await call('workspace_workload_list', w);
  await call('workspace_workload_get', ww);
  await call('workspace_workload_status', ww);
  await call('workspace_workload_logs', ww);
  await call('workspace_workload_stats', ww);
  await call('workspace_workload_update', { ...ww, name: 'web2' });
  await call('workspace_workload_stop', ww);
  await call('workspace_workload_start', ww);
  for (const n of ['workspace_logs', 'workspace_logs_list', 'workspace_logs_boot', 'workspace_stats', 'workspace_info', 'workspace_config', 'workspace_details']) await call(n, w);
  await call('workspace_logs_file', { ...w, name: 'boot.log' });
  await call('workspace_logs_clear', w);

  // Network and public access.
  await call('workspace_network_get', w);
  await call('workspace_network_update', { ...w, allow_internet: true });
  await call('workspace_network_ip', { ...w, ip: '192.0.2.1' });
  await call('workspace_network_set_custom_proxy', { ...w, host: '203.0.113.9', port: 3128 });
  await call('workspace_network_clear_custom_proxy', w);
  await call('workspace_public_access_expose', { ...w, port: 3000, label: 'web' });
  await call('workspace_public_access_list', w);
  await call('workspace_public_access_revoke', { ...w, port: 3000 });
  await call('workspace_domain_connect', { ...w, domain: 'app.mcp-surface.test', port: 3000 });
  await call('workspace_domain_get', w);
  await call('workspace_domain_check_dns', { ...w, domain: 'app.mcp-surface.test' });
  await call('workspace_domain_ssl_renew', w);
  await call('workspace_domain_disconnect', w);

  // Access: SSH, runtime API, metadata, usage.
  for (const n of ['workspace_ssh_status', 'workspace_ssh_enable']) await call(n, w);
  await call('workspace_ssh_password', { ...w, password: 'a-long-enough-password-1' });
  await call('workspace_ssh_key', { ...w, public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl mcp@test' });
  await call('workspace_ssh_disable', w);
  for (const n of ['workspace_api_access_status', 'workspace_api_access_enable', 'workspace_api_access_token', 'workspace_api_access_token_raw', 'workspace_api_access_token_rotate', 'workspace_api_access_disable']) await call(n, w);
  await call('workspace_metadata_update', { ...w, metadata: { team: 'mcp' } });
  const meta = await call('workspace_metadata_get', w);
  assert.ok(JSON.stringify(meta).includes('mcp'));
  for (const n of ['workspace_usage', 'workspace_usage_totals', 'workspace_credits_chart', 'workspace_usage_tracking_start', 'workspace_usage_tracking_stop', 'workspace_usage_wipe']) await call(n, w);

  // Snapshots and archives.
  await call('workspace_snapshot_create', w);
  const archive = await call('workspace_archive_create', w);
  const version = String(archive?.archive?.version ?? archive?.version ?? '1');
  await call('workspace_archive_list', w);
  await call('workspace_archive_get', { ...w, version });
  await call('workspace_archive_delete', { ...w, version, delete_file: true });
  await call('workspace_archive_delete_all', { ...w, delete_files: true });

  // Power and lifecycle.
  for (const n of ['workspace_pause', 'workspace_resume', 'workspace_restart', 'workspace_stop', 'workspace_snapshot_restore', 'workspace_start']) await call(n, w);
  await call('workspace_workload_delete', ww);
  await call('workspace_workload_delete_all', w);
  await call('workspace_lifecycle_get', w);
  await call('workspace_lifecycle_temporary', { ...w, ttl: '2h' });
  await call('workspace_lifecycle_ttl', { ...w, ttl: '3h' });
  await call('workspace_ping', { ...w, ttl_seconds: 7200 });
  await call('workspace_lifecycle_permanent', w);

  // Two ways to delete: the second workspace goes through lifecycle_destroy.
  const second = await call('workspace_create', { image: 'debian-12', wait_ready: false });
  await call('workspace_lifecycle_destroy', { workspace_id: second?.workspace?.id ?? second?.id });
  await call('workspace_delete', w);

  const missed = tools.filter((n) => !called.has(n));
  t.diagnostic(`${called.size} of ${tools.length} workspace tools called; ${failures.length} failures`);
  assert.deepEqual(missed, [], 'tools the test does not call');
  assert.deepEqual(failures, [], 'tools that did not answer for real');
});
