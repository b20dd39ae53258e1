/**
 * The layer rules of eslint.config.js bite: a deliberate wrong-way import in
 * each guarded folder fails lint, and the same file with an allowed import
 * passes (so the test fails if a rule is dropped or made too wide).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ESLint } from 'eslint';

const repo = path.resolve(import.meta.dirname, '..', '..');
const eslint = new ESLint({ cwd: repo });

/** The rule ids lint reports for `code` as if it were the file at `file` (the file need not exist). */
async function violations(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(repo, file) });
  return result!.messages.map((m) => m.ruleId ?? m.message);
}

const CASES: { file: string; wrong: string; right: string }[] = [
  { file: 'src/core/probe.ts', wrong: "import fs from 'node:fs';", right: "import { createHash } from 'node:crypto';" },
  { file: 'src/core/probe.ts', wrong: "import { openSqlite } from '../store/db.ts';", right: "import { ValidationFailed } from './errors.ts';" },
  { file: 'src/core/probe.ts', wrong: "import pino from 'pino';", right: "import { ValidationFailed } from './errors.ts';" },
  { file: 'src/agent/files/probe.ts', wrong: "import { LocalHost } from '../../host/local-host.ts';", right: "import { ValidationFailed } from '../../core/errors.ts';" },
  { file: 'src/agent/probe.ts', wrong: "import { WorkspaceService } from '../control/workspaces/index.ts';", right: "import { ValidationFailed } from '../core/errors.ts';" },
  { file: 'src/api/routes/probe.ts', wrong: "import { openSqlite } from '../../store/db.ts';", right: "import { ValidationFailed } from '../../core/errors.ts';" },
  { file: 'src/api/probe.ts', wrong: "import type { HostDriver } from '../host/host-driver.ts';", right: "import { ValidationFailed } from '../core/errors.ts';" },
  { file: 'src/host/probe.ts', wrong: "import { buildApi } from '../api/server.ts';", right: "import { ValidationFailed } from '../core/errors.ts';" },
  { file: 'src/control/probe.ts', wrong: "import { Edge } from '../edge/server.ts';", right: "import { ValidationFailed } from '../core/errors.ts';" },
];

for (const c of CASES) {
  test(`${c.file}: "${c.wrong}" fails lint, "${c.right}" passes`, async () => {
    // Use the imported name, so the only thing lint can object to is the import itself.
    const withUse = (line: string) => `${line}\nexport const used = [typeof ${line.replace(/^import (type )?(\{ )?(\w+).*$/, '$3')}];\n`;
    assert.ok((await violations(c.file, withUse(c.wrong))).includes('no-restricted-imports'), 'the wrong-way import is reported');
    assert.deepEqual(await violations(c.file, withUse(c.right)), [], 'the allowed import is clean');
  });
}
