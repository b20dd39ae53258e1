/**
 * A tiny readers-writer lock: nft element updates share it; whole-ruleset
 * loads take it alone (a load replaces the sets an update would write to).
 */
export class RwLock {
  private readers = 0;
  private writer: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    this.readers++;
    try {
      return await fn();
    } finally {
      if (--this.readers === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    let release!: () => void;
    this.writer = new Promise((r) => { release = r; });
    try {
      if (this.readers > 0) await new Promise<void>((r) => { this.drained = r; });
      this.drained = null;
      return await fn();
    } finally {
      this.writer = null;
      release();
    }
  }
}
