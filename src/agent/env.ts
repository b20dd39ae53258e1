/**
 * The environment given to user processes. Every HEARTH_* variable is the
 * agent's own configuration (the secret among them) and must never reach a
 * user process. main.ts also deletes them from process.env at startup; this
 * filter is the second line of defence for in-process embedding (tests).
 */

export function isAgentVar(name: string): boolean {
  return name.startsWith('HEARTH_');
}

export function baseChildEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !isAgentVar(k)) out[k] = v;
  }
  if (!out.PATH) out.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return out;
}

/** Base env plus caller overrides; callers cannot inject HEARTH_* either. */
export function childEnv(extra?: Record<string, string>): Record<string, string> {
  const env = baseChildEnv();
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (!isAgentVar(k)) env[k] = v;
    }
  }
  return env;
}
