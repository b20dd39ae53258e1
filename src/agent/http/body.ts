/**
 * Request bodies. Everything is size-capped before it is buffered, so a
 * hostile or buggy client cannot exhaust the agent's memory.
 */
import type { IncomingMessage } from 'node:http';
import { AgentError } from '../../core/agent-protocol/errors.ts';

/** JSON bodies (file writes carry whole files, base64 adds a third). */
export const JSON_BODY_LIMIT = 96 * 1024 * 1024;

export async function readRaw(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new AgentError('payload_too_large', `Request body of ${declared} bytes exceeds the ${limit}-byte limit`, { limit });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      throw new AgentError('payload_too_large', `Request body exceeds the ${limit}-byte limit`, { limit });
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Parse a JSON object body. The SDK sends `Content-Type: application/json`
 * on every call, bodyless POSTs included, so an empty body is `{}`.
 */
export async function readJson(req: IncomingMessage, limit = JSON_BODY_LIMIT): Promise<Record<string, unknown>> {
  const raw = await readRaw(req, limit);
  if (raw.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new AgentError('invalid_json', `Request body is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new AgentError('invalid_json', 'Request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
