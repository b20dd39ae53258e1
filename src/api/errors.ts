/**
 * The one owner of the contract's error codes (fastify's FST_ERR_* table,
 * cloudflare's status map). Every failure leaves Hearth as the §2.1 body:
 * `{ success:false, error, code, message, details?, request_id }`.
 * The status table is typed over every code, so a code without a status
 * does not compile. docs/errors.md lists exactly these codes (checked by a test).
 */
import {
  AlreadyExists, Forbidden, LimitReached, NotFound, ProvisionFailed, StateConflict,
  Unauthenticated, Unavailable, ValidationFailed, QuotaExceeded, RateLimited,
} from '../core/errors.ts';
import { InvalidTransition } from '../core/lifecycle.ts';
import { DurationError } from '../core/duration.ts';
import { PortLimitReached } from '../control/public-access.ts';

export const ERROR_STATUS = {
  bad_request: 400,
  validation_error: 400,
  missing_credentials: 401,
  invalid_credentials: 401,
  quota_exceeded: 402,
  forbidden: 403,
  namespace_suspended: 403,
  runtime_disabled: 403,
  not_found: 404,
  conflict: 409,
  invalid_state: 409,
  SANDBOX_LIMIT_REACHED: 409,
  NAMESPACE_LIMIT_REACHED: 409,
  PORT_LIMIT_REACHED: 409,
  payload_too_large: 413,
  rate_limited: 429,
  server_error: 500,
  not_implemented: 501,
  not_supported: 501,
  workspace_unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
  success: false;
  error: ErrorCode;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  hint?: string;
  request_id?: string;
  [extra: string]: unknown;
}

export class HttpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly hint?: string,
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/** Map any thrown value to the contract's error. Unknown errors become server_error. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ValidationFailed) return new HttpError('validation_error', err.message, { field: err.field }, err.hint);
  if (err instanceof DurationError) return new HttpError('validation_error', err.message, { field: 'ttl' });
  if (err instanceof NotFound) return new HttpError('not_found', err.message, { kind: err.kind, id: err.id });
  if (err instanceof AlreadyExists) return new HttpError('conflict', err.message, { kind: err.kind, id: err.id });
  if (err instanceof StateConflict) return new HttpError('invalid_state', err.message, undefined, err.hint);
  if (err instanceof InvalidTransition) return new HttpError('invalid_state', err.message, { from: err.from, to: err.to });
  if (err instanceof PortLimitReached) return new HttpError('PORT_LIMIT_REACHED', err.message, { current: err.current, max: err.max }, 'revoke a port with publicAccess.revoke(id, port)', { current: err.current, max: err.max });
  if (err instanceof LimitReached) {
    const code = err.kind === 'namespace' ? 'NAMESPACE_LIMIT_REACHED' : 'SANDBOX_LIMIT_REACHED';
    return new HttpError(code, err.message, { current: err.current, max: err.max }, undefined, { current: err.current, max: err.max });
  }
  if (err instanceof Forbidden) {
    const code = err.reason === 'namespace_suspended' ? 'namespace_suspended' : err.reason === 'runtime_disabled' ? 'runtime_disabled' : 'forbidden';
    return new HttpError(code, err.message);
  }
  if (err instanceof Unauthenticated) return new HttpError(err.reason === 'missing' ? 'missing_credentials' : 'invalid_credentials', err.message);
  if (err instanceof RateLimited) {
    const seconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
    return new HttpError('rate_limited', err.message, { retry_after: seconds }, `retry after ${seconds} s`);
  }
  if (err instanceof QuotaExceeded) return new HttpError('quota_exceeded', err.message, { namespace: err.namespace, service: err.service, used: err.used, limit: err.limit });
  if (err instanceof Unavailable) return new HttpError('workspace_unavailable', err.message, undefined, err.hint);
  if (err instanceof ProvisionFailed) return new HttpError('server_error', err.message, { ...err.failure }, err.failure.hint);
  const message = err instanceof Error ? err.message : String(err);
  return new HttpError('server_error', `internal error: ${message}`);
}

export function errorBody(err: HttpError, requestId?: string): ErrorBody {
  const body: ErrorBody = { success: false, error: err.code, code: err.code, message: err.message };
  if (err.details) body.details = err.details;
  if (err.hint) body.hint = err.hint;
  if (err.extra) Object.assign(body, err.extra);
  if (requestId) body.request_id = requestId;
  return body;
}
