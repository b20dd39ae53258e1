/**
 * Token buckets by key (a workspace address, a client address, an API key
 * prefix): each key may spend `burst` at once and earns `perSecond` back.
 * Used wherever a tenant can make hearthd do work per request it sends for
 * free — DNS queries, SSH and API authentication attempts. Pure: the caller
 * passes the time.
 *
 * Memory is bounded: at most `maxKeys` buckets are kept; when full, the
 * bucket touched longest ago is dropped (it would have refilled anyway if it
 * was idle), so spraying keys cannot grow the table without bound.
 */
export interface RateLimitOptions {
  /** Tokens a key may spend at once. */
  burst: number;
  /** Tokens earned back per second. */
  perSecond: number;
  /** Buckets kept at most (default 10 000). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;

  constructor(private readonly opts: RateLimitOptions) {
    this.maxKeys = opts.maxKeys ?? 10_000;
  }

  /** Spend `cost` tokens of `key` at `nowMs`: true if it had them. */
  take(key: string, nowMs: number, cost = 1): boolean {
    const b = this.refill(key, nowMs);
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  }

  /** Milliseconds until `key` has `cost` tokens again (0: now). */
  retryAfterMs(key: string, nowMs: number, cost = 1): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = Math.min(this.opts.burst, b.tokens + ((nowMs - b.at) / 1000) * this.opts.perSecond);
    return tokens >= cost ? 0 : Math.ceil(((cost - tokens) / this.opts.perSecond) * 1000);
  }

  private refill(key: string, nowMs: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is recency order
      b.tokens = Math.min(this.opts.burst, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * this.opts.perSecond);
      b.at = nowMs;
    } else {
      b = { tokens: this.opts.burst, at: nowMs };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }
}
