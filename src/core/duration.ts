/**
 * Durations as the contract writes them: a number of seconds, or a string
 * like "30s", "5m", "1h30m", "2d". Returns whole seconds.
 */
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** Longest duration accepted: 100 years (so "now + duration" is always a real date). */
export const MAX_DURATION_SECONDS = 100 * 365 * 86400;

export class DurationError extends Error {
  constructor(readonly input: unknown) {
    super(`invalid duration ${JSON.stringify(input)}: use seconds (e.g. 300) or a string like "30s", "5m", "1h", at most 100 years`);
    this.name = 'DurationError';
  }
}

export function parseDuration(input: unknown): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input <= 0 || !Number.isInteger(input) || input > MAX_DURATION_SECONDS) throw new DurationError(input);
    return input;
  }
  if (typeof input !== 'string') throw new DurationError(input);
  const text = input.trim().toLowerCase();
  if (/^\d+$/.test(text)) return parseDuration(Number(text));
  const re = /(\d+)([smhd])/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== text.length || consumed === 0 || total <= 0 || total > MAX_DURATION_SECONDS) throw new DurationError(input);
  return total;
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
