/**
 * Paths are absolute paths inside the workspace. The agent runs as the
 * workspace's root, so there is nothing to confine here (traversal is the
 * gateway's concern, spec §22.3); relative paths resolve against `/`.
 */
import { resolve } from 'node:path';
import { validation } from '../../core/agent-protocol/errors.ts';

export function resolvePath(raw: unknown, field = 'path', fallback?: string): string {
  if (raw === undefined || raw === null || raw === '') {
    if (fallback !== undefined) return fallback;
    throw validation(field, `${field} is required`);
  }
  if (typeof raw !== 'string') throw validation(field, `${field} must be a string`);
  if (raw.includes('\0')) throw validation(field, `${field} must not contain NUL bytes`);
  return resolve('/', raw);
}

/** `/a/b` relative to `/a` → `b`; to `/` → `a/b`. */
export function relativeTo(root: string, path: string): string {
  if (root === '/') return path.slice(1);
  return path === root ? '' : path.slice(root.length + 1);
}
