/**
 * The image's shell, used by `exec_mode: shell`, by default terminals and
 * reported in RuntimeInfo. Resolved once, lazily: images differ (Alpine has
 * no bash) and the lookup must not cost anything at startup.
 */
import { accessSync, constants } from 'node:fs';

let cached: string | undefined;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function defaultShell(): string {
  if (cached) return cached;
  const fromEnv = process.env.SHELL;
  const candidates = [fromEnv, '/bin/bash', '/usr/bin/bash', '/bin/sh'].filter((s): s is string => !!s && s.startsWith('/'));
  cached = candidates.find(executable) ?? '/bin/sh';
  return cached;
}
