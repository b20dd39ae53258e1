/**
 * The one owner of the agent's error codes. Every failure leaves the agent as
 * `{ success:false, error, code, message, details? }` — the data-plane SDK
 * only throws when it sees `success:false` (spec §1.4), so no error body may
 * lack it. The status table is typed over every code, so a code without a
 * status does not compile. It lives in core/ because both sides read it: the
 * agent writes these bodies, hearthd's agent client (host/agent-client.ts)
 * reads them back.
 */

export const AGENT_ERROR_STATUS = {
  bad_request: 400,
  invalid_json: 400,
  validation_error: 400,
  is_directory: 400,
  not_directory: 400,
  unauthorized: 401,
  permission_denied: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  already_exists: 409,
  not_empty: 409,
  task_not_running: 409,
  limit_reached: 409,
  payload_too_large: 413,
  file_too_large: 413,
  server_error: 500,
  not_implemented: 501,
  bad_gateway: 502,
  no_space: 507,
} as const satisfies Record<string, number>;

export type AgentErrorCode = keyof typeof AGENT_ERROR_STATUS;

export interface AgentErrorBody {
  success: false;
  error: AgentErrorCode;
  code: AgentErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AgentError';
  }

  get status(): number {
    return AGENT_ERROR_STATUS[this.code];
  }

  toBody(): AgentErrorBody {
    const body: AgentErrorBody = { success: false, error: this.code, code: this.code, message: this.message };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** errno → contract code. Filesystem errors are the common case in the agent. */
const ERRNO_CODE: Record<string, AgentErrorCode> = {
  ENOENT: 'not_found',
  EISDIR: 'is_directory',
  ENOTDIR: 'not_directory',
  EEXIST: 'already_exists',
  ENOTEMPTY: 'not_empty',
  EACCES: 'permission_denied',
  EPERM: 'permission_denied',
  EROFS: 'permission_denied',
  ENOSPC: 'no_space',
  EDQUOT: 'no_space',
  EFBIG: 'file_too_large',
  EINVAL: 'bad_request',
  ELOOP: 'bad_request',
  ENAMETOOLONG: 'bad_request',
  EXDEV: 'conflict',
  EBUSY: 'conflict',
  ETXTBSY: 'conflict',
  ERR_FS_CP_EEXIST: 'already_exists',
  ERR_FS_CP_EINVAL: 'bad_request',
  ERR_FS_CP_DIR_TO_NON_DIR: 'conflict',
  ERR_FS_CP_NON_DIR_TO_DIR: 'conflict',
  ERR_FS_EISDIR: 'is_directory',
};

function errnoMessage(code: AgentErrorCode, err: NodeJS.ErrnoException): string {
  const where = err.path ? `: ${err.path}` : '';
  switch (code) {
    case 'not_found': return `No such file or directory${where}`;
    case 'is_directory': return `Is a directory${where}`;
    case 'not_directory': return `Not a directory${where}`;
    case 'already_exists': return `Already exists${where}`;
    case 'not_empty': return `Directory not empty${where}`;
    case 'permission_denied': return `Permission denied${where}`;
    case 'no_space': return `No space left on device${where}`;
    default: return err.message;
  }
}

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

/** Map anything thrown to an AgentError; unknown errors become server_error. */
export function toAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (isErrno(err)) {
    const code = ERRNO_CODE[err.code as string];
    if (code) return new AgentError(code, errnoMessage(code, err), { errno: err.code, ...(err.path ? { path: err.path } : {}) });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError('server_error', message || 'Internal error');
}

/** Shorthands used by services, so call sites read as sentences. */
export const badRequest = (message: string, details?: Record<string, unknown>): AgentError =>
  new AgentError('bad_request', message, details);
export const validation = (field: string, message: string): AgentError =>
  new AgentError('validation_error', message, { field });
export const notFound = (message: string, details?: Record<string, unknown>): AgentError =>
  new AgentError('not_found', message, details);
