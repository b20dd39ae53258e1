/**
 * Golden files (test/golden/): a pure builder's output pinned byte for
 * byte. `UPDATE_GOLDEN=1` rewrites them; the diff is then reviewed like code.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

export function golden(name: string, actual: string): void {
  const file = new URL(`../golden/${name}`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(file, actual);
    return;
  }
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from the golden file; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff`);
}
