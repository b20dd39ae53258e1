/**
 * The grant table of docs/contract.md §24.1 is generated from the route table
 * and cannot rot: it lists every route that needs the runtime or destroy
 * grant, or more than its permission's grant, with its body and state rules.
 * On a mismatch the assertion prints the block to paste.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PERMISSION_GRANT, type RouteDecl } from '../../src/api/route-table.ts';
import { redactSecrets, REDACTED } from '../../src/api/views.ts';
import { startGrantsHarness } from './grants-harness.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

function row(r: RouteDecl): string | null {
  const own = PERMISSION_GRANT[r.permission];
  const extra = r.grants.filter((g) => g !== own);
  const sensitive = r.grants.some((g) => g === 'runtime' || g === 'destroy');
  if (!extra.length && !sensitive && !r.body.length && !r.state.length) return null;
  const when = [
    ...r.body.map((b) => `${b.grant} if \`${b.field}\` is ${b.values === 'any' ? 'set' : b.values.map((v) => JSON.stringify(v)).join(' or ')}`),
    ...r.state.map((s) => `${s.grant} if ${s.why}`),
  ];
  return `| \`${r.method} ${r.url}\` | ${r.permission} | ${r.grants.join(', ') || '—'} | ${when.join('; ') || '—'} |`;
}

test('docs/contract.md §24.1 lists the grants of the route table', async () => {
  const h = await startGrantsHarness();
  try {
    const rows = h.api.routes.routes.map(row).filter((x): x is string => x !== null);
    const block = ['| Route | Permission | Grants on every call | Also needs, when |', '|---|---|---|---|', ...rows].join('\n');
    const doc = fs.readFileSync(path.join(repo, 'docs', 'contract.md'), 'utf8');
    const m = /<!-- grants:begin -->\n([\s\S]*?)\n?<!-- grants:end -->/.exec(doc);
    assert.ok(m, 'docs/contract.md has a <!-- grants:begin --> … <!-- grants:end --> block');
    assert.equal(m[1], block, `docs/contract.md §24.1 is stale; the block is:\n${block}`);
  } finally {
    await h.close();
  }
});

test('redaction keeps env names and drops values, in all three env forms, anywhere in a reply; nothing else changes', () => {
  const reply = {
    success: true,
    workspace: { id: 'ws_1', config: { env: ['A=1', 'B=x=y', 'NOEQ'], cmd: 'run', cpus: 1 } },
    workloads: [{ name: 'w', env: { TOKEN: 's3cret' } }, { name: 'v', env: [{ key: 'K', value: 'v' }] }],
    nothing: null, list: [1, 'env'],
  };
  const copy = structuredClone(reply);
  assert.deepEqual(redactSecrets(reply), {
    success: true,
    workspace: { id: 'ws_1', config: { env: [`A=${REDACTED}`, `B=${REDACTED}`, 'NOEQ'], cmd: 'run', cpus: 1 } },
    workloads: [{ name: 'w', env: { TOKEN: REDACTED } }, { name: 'v', env: [{ key: 'K', value: REDACTED }] }],
    nothing: null, list: [1, 'env'],
  });
  assert.deepEqual(reply, copy, 'the input is left alone');
});
