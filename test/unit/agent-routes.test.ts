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

test(`route surface of generation ${AGENT_GENERATION}`, async () => {
  assert.equal(AGENT_GENERATION, 2, 'a new generation needs its own frozen list here');
  const t = await startTestAgent();
  try {
    assert.deepEqual([...t.agent.routes].sort(), [...GENERATION_2].sort());
  } finally {
    await t.close();
  }
});
