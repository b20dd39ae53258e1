/**
 * What stands between the SSH gateway's password and key checks and someone
 * guessing at them from the internet:
 *
 * - a connection may fail `triesPerConnection` times (OpenSSH's MaxAuthTries
 *   is 6), then it is closed;
 * - a source address may fail `failuresBurst` times at once and earns
 *   `failuresPerMinute` back; while its budget is spent every attempt from
 *   it is refused before any check runs (no scrypt, no key lookup);
 * - at most `concurrentPasswordChecks` scrypt verifications run at once
 *   (each takes tens of milliseconds of a libuv thread: unbounded, a few
 *   connections would starve every other user of the threadpool — file
 *   reads, DNS, the store).
 *
 * Budgets are per gateway process and per source address (a connection
 * proxied through the gateway itself, ProxyJump, counts as one source).
 */
import { RateLimiter } from '../core/rate-limit.ts';

export interface SshAuthLimits {
  triesPerConnection: number;
  failuresBurst: number;
  failuresPerMinute: number;
  concurrentPasswordChecks: number;
}

export const DEFAULT_SSH_AUTH_LIMITS: SshAuthLimits = { triesPerConnection: 6, failuresBurst: 20, failuresPerMinute: 10, concurrentPasswordChecks: 2 };

export class SshAuthGuard {
  private readonly failures: RateLimiter;
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(readonly limits: SshAuthLimits = DEFAULT_SSH_AUTH_LIMITS) {
    this.failures = new RateLimiter({ burst: limits.failuresBurst, perSecond: limits.failuresPerMinute / 60 });
  }

  /** Whether `source` may try at all now (its failure budget is not spent). */
  mayTry(source: string): boolean {
    return this.failures.retryAfterMs(source, Date.now()) === 0;
  }

  /** A failed attempt from `source`: spends one of its budget. */
  failed(source: string): void {
    this.failures.take(source, Date.now());
  }

  /** Run a password check when one of the few check slots is free. */
  async check<T>(fn: () => Promise<T>): Promise<T> {
    // A finishing check hands its slot straight to the next waiter, so `running` never exceeds the limit.
    if (this.running >= this.limits.concurrentPasswordChecks) await new Promise<void>((r) => this.queue.push(r));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}
