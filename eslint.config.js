import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of the house (docs/architecture.md, "Layers"), kept true by lint:
 * each folder lists what it may never import. An import is matched as written,
 * relative (`../../host/…`) or bare (`node:fs`).
 */
const FOLDERS = ['core', 'agent', 'host', 'store', 'auth', 'control', 'api', 'gateway', 'edge', 'ssh', 'cli'];
const crossing = (...folders) => ({
  regex: `^(\\.\\./)+(${folders.join('|')})(/|\\.ts$)`,
  message: `this layer may not import from ${folders.join(', ')}/ (see docs/architecture.md, "Layers")`,
});
/** Node's modules that do I/O: pure logic (core/) takes their results as arguments instead. */
const NODE_IO = ['fs', 'fs/promises', 'child_process', 'net', 'http', 'https', 'http2', 'dgram', 'dns', 'dns/promises', 'tls', 'os', 'worker_threads', 'cluster', 'readline', 'process', 'v8', 'vm'];
const nodeIo = {
  regex: `^(node:)?(${NODE_IO.join('|')})$`,
  message: 'core/ is pure: no I/O (pass what it needs as data)',
};
const layer = (dir, ...patterns) => ({
  files: [`src/${dir}/**`],
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.data'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Pure logic: nothing outside core/, no I/O, no package that does I/O.
  layer('core', crossing(...FOLDERS.filter((f) => f !== 'core')), nodeIo, {
    regex: '^(better-sqlite3|kysely|pg|pino|fastify|ws|ssh2|tar|acme-client)(/|$)',
    message: 'core/ is pure: no package that does I/O',
  }),
  // The guest side runs inside the workspace: it shares only pure logic with the host, the agent protocol included (core/agent-protocol*).
  layer('agent', crossing(...FOLDERS.filter((f) => !['agent', 'core'].includes(f)))),
  // The kernel-facing layer knows nothing of the store, the services or the planes above it.
  layer('host', crossing('store', 'auth', 'control', 'api', 'gateway', 'edge', 'ssh', 'cli')),
  layer('store', crossing(...FOLDERS.filter((f) => !['store', 'core'].includes(f)))),
  // Services sit under the planes that call them.
  layer('control', crossing('api', 'gateway', 'edge', 'ssh', 'cli', 'agent')),
  // Routes call services: never the store or the kernel.
  layer('api', crossing('host', 'store', 'agent', 'gateway', 'edge', 'ssh', 'cli')),
  {
    // Tests and benches read loosely typed JSON answers of the wire protocol.
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
