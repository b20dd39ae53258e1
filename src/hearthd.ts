/**
 * hearthd: one process, several listeners (control plane, data-plane
 * gateway, edge, SSH). What it is made of is built in one place,
 * src/compose.ts; this is the handle `hearth serve` holds between its
 * flags and its signals: open (build and start), the first-start admin
 * key, and an orderly close.
 */
import type { NewKey } from './auth/keys.ts';
import { compose, type Endpoints, type Hearth, type HearthdOptions } from './compose.ts';

export type { Endpoints, HearthdOptions, Listen } from './compose.ts';

export class Hearthd {
  private constructor(private readonly hearth: Hearth, readonly endpoints: Endpoints) {}

  static async open(opts: HearthdOptions): Promise<Hearthd> {
    const hearth = await compose(opts);
    return new Hearthd(hearth, await hearth.start());
  }

  /** On first start: the admin API key. Returns null when one exists already. */
  ensureAdminKey(): Promise<NewKey | null> {
    return this.hearth.keys.ensureAdmin();
  }

  close(): Promise<void> {
    return this.hearth.close();
  }
}
