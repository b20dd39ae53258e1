/**
 * Control-plane SSE (spec §1.5): `data: <json>\n\n` per event, `: ping`
 * comments as keep-alives, LF only, no event names — what the SDK's
 * `requestSSE` parses. Streams are relayed from the workspace agent (which
 * already speaks this shape); each event can be reshaped on the way (e.g.
 * metrics gain the host's view).
 *
 * A stream ends when the agent ends it, when the client goes away (the
 * upstream request is then destroyed, so the agent stops too), or when the
 * API server closes (closeAllStreams from a preClose hook: a hijacked reply
 * would otherwise keep fastify's close waiting forever).
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { openDataSse, SseParser, type DataSse } from '../core/agent-protocol/sse.ts';
import { recheckOf } from './recheck.ts';

/** The protocol's writer, the one the agent uses (one SSE implementation); hearthd adds its request id. */
export type SseWriter = DataSse;

const open = new Map<SseWriter, FastifyInstance>();

/** Take over the reply and start an SSE response. Call only once nothing can fail with a JSON error any more. */
export function openSse(reply: FastifyReply): SseWriter {
  reply.hijack();
  const writer = openDataSse(reply.raw, { 'x-request-id': String(reply.request.id) });
  open.set(writer, reply.server);
  const recheck = recheckOf(reply.request);
  // Authorized when it opened; re-authorized while it lasts, so a revoked
  // credential or a workspace out of sight ends it within `everyMs`.
  const timer = recheck ? setInterval(() => {
    recheck.check().catch((err: unknown) => {
      reply.request.log.info({ err }, 'stream ended: its authorization no longer holds');
      writer.end();
    });
  }, recheck.everyMs) : undefined;
  timer?.unref();
  void writer.closed.then(() => { open.delete(writer); clearInterval(timer); });
  return writer;
}

/** End every stream of `app` (its preClose hook). */
export function closeAllStreams(app: FastifyInstance): void {
  for (const [w, owner] of open) if (owner === app) w.end();
}

/**
 * Relay an agent SSE response: every `data:` line is parsed (the protocol's
 * SseParser), passed through
 * `transform` (null drops it), and re-sent; comments are dropped (we send
 * our own keep-alives). Resolves when either side ends.
 */
export async function relaySse(
  reply: FastifyReply,
  upstream: IncomingMessage,
  transform: (event: Record<string, unknown>) => object | null | Promise<object | null> = (e) => e,
): Promise<void> {
  const sse = openSse(reply);
  void sse.closed.then(() => upstream.destroy());
  const parser = new SseParser();
  // A multi-byte character split between two chunks stays whole.
  upstream.setEncoding('utf8');
  try {
    for await (const chunk of upstream) {
      for (const { data } of parser.feed(chunk as string)) {
        const out = await transform(data);
        if (out) sse.send(out);
      }
      if (!sse.isOpen()) break;
    }
  } catch {
    // The agent went away mid-stream (workspace stopped): end ours too.
  } finally {
    sse.end();
    upstream.destroy();
  }
}
