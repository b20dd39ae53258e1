/**
 * Long-lived control-plane replies (SSE streams) are authorized once, when
 * they open; a key or token revoked later, a namespace deleted, or a
 * workspace the caller can no longer see must still end them. The route
 * table leaves here, per request, the check it ran to admit it; the SSE
 * writer runs it again every `everyMs` and ends the stream when it fails.
 */
import type { FastifyRequest } from 'fastify';

export interface Recheck {
  /** Re-authenticate and re-authorize the request; throws what the route table would. */
  check(): Promise<void>;
  /** How often, in milliseconds. */
  everyMs: number;
}

/** How often streams are re-authorized unless the server is told otherwise. */
export const DEFAULT_RECHECK_MS = 30_000;

const rechecks = new WeakMap<FastifyRequest, Recheck>();

export function setRecheck(req: FastifyRequest, recheck: Recheck): void {
  rechecks.set(req, recheck);
}

export function recheckOf(req: FastifyRequest): Recheck | undefined {
  return rechecks.get(req);
}
