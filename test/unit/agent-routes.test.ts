/**
 * The agent's route surface, frozen per protocol generation:
 * hearthd decides what it may call from the generation on /health, so a
 * route added or removed without bumping AGENT_GENERATION fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_GENERATION } from '../../src/core/agent-protocol.ts';
import { startTestAgent } from '../helpers/agent-harness.ts';

const GENERATION_1 = [
  'GET /health', 'GET /runtime', 'GET /runtimes',
  'POST /exec', 'POST /exec/stream', 'GET /exec/stream', 'GET /exec', 'DELETE /exec',
  'GET /exec/:taskId', 'DELETE /exec/:taskId', 'POST /exec/:taskId/input',
  'GET /files', 'GET /files/stream', 'GET /files/read', 'POST /files/write', 'POST /files/mkdir',
  'GET /files/stat', 'POST /files/delete', 'POST /files/move', 'POST /files/copy',
  'GET /files/search', 'POST /files/search', 'GET /files/search/files', 'POST /files/search/files',
  'GET /files/search/init', 'POST /files/search/init',
  'POST /files/transfer/download', 'POST /files/transfer/upload',
  'POST /terminals', 'GET /terminals', 'GET /terminals/:id', 'DELETE /terminals/:id',
  'GET /terminals/:id/scrollback', 'DELETE /terminals/:id/scrollback', 'PATCH /terminals/:id/scrollback',
  'POST /watchers', 'GET /watchers', 'GET /watchers/:id', 'DELETE /watchers/:id',
  // Not in the router: /ws (upgrade) and /proxy/* (any method, forwarded), handled in server.ts.
];

/** Generation 2 adds hearthd's internal workload, log and metrics API (not reachable as contract routes). */
const GENERATION_2 = [
  ...GENERATION_1,
  'GET /_hearth/workloads', 'POST /_hearth/workloads', 'DELETE /_hearth/workloads',
  'GET /_hearth/workloads/stats', 'GET /_hearth/workloads/stats/stream',
  'GET /_hearth/workloads/:wid', 'PUT /_hearth/workloads/:wid', 'PATCH /_hearth/workloads/:wid', 'DELETE /_hearth/workloads/:wid',
  'POST /_hearth/workloads/:wid/start', 'POST /_hearth/workloads/:wid/stop', 'POST /_hearth/workloads/:wid/restart',
  'GET /_hearth/workloads/:wid/logs', 'GET /_hearth/workloads/:wid/logs/stream',
  'GET /_hearth/workloads/:wid/stats', 'GET /_hearth/workloads/:wid/stats/stream',
  'GET /_hearth/logs', 'DELETE /_hearth/logs', 'GET /_hearth/logs/files', 'GET /_hearth/logs/files/:name',
  'GET /_hearth/logs/stream/boot', 'GET /_hearth/logs/stream/cmd',
  'GET /_hearth/metrics', 'GET /_hearth/metrics/stream',
];

/** Generation 3 adds the claim of a pooled agent (warm pools). */
const GENERATION_3 = [...GENERATION_2, 'POST /_hearth/claim'];

test(`route surface of generation ${AGENT_GENERATION}`, async () => {
  assert.equal(AGENT_GENERATION, 3, 'a new generation needs its own frozen list here');
  const t = await startTestAgent();
  try {
    assert.deepEqual([...t.agent.routes].sort(), [...GENERATION_3].sort());
  } finally {
    await t.close();
  }
});

test('claim: only a pooled agent, once, with the pool\'s secret; afterwards only the new secret works', async () => {
  const { startAgent } = await import('../../src/agent/server.ts');
  const pool = 'p'.repeat(40);
  const mine = 'm'.repeat(40);
  const agent = await startAgent({ port: 0, host: '127.0.0.1', secret: pool, pooled: true, log: () => {} });
  const call = (secret: string, path: string, body?: unknown) => fetch(agent.url + path, {
    method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  try {
    assert.equal((await call(mine, '/_hearth/claim', { secret: mine })).status, 401, 'a claim needs the pool secret');
    assert.equal((await call(pool, '/_hearth/claim', { secret: 'short' })).status, 400);
    assert.equal((await call(pool, '/_hearth/claim', { secret: mine })).status, 200);
    assert.equal((await call(pool, '/health')).status, 401, 'the pool secret is forgotten');
    assert.equal((await call(mine, '/health')).status, 200);
    assert.equal((await call(mine, '/_hearth/claim', { secret: 'n'.repeat(40) })).status, 409, 'a claimed agent cannot be claimed again');
  } finally {
    await agent.close();
  }
  const plain = await startTestAgent();
  try {
    assert.equal((await plain.call('POST', '/_hearth/claim', { secret: 'n'.repeat(40) })).status, 409, 'an agent that is not pooled is never claimed');
  } finally {
    await plain.close();
  }
});
