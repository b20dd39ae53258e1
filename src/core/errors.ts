/**
 * Domain errors thrown by core/, host/ and the control services. They say
 * what went wrong in domain words; `src/api/errors.ts` is the one place that
 * maps them to the contract's codes and HTTP statuses.
 */

export class ValidationFailed extends Error {
  constructor(readonly field: string, message: string, readonly hint?: string) {
    super(message);
    this.name = 'ValidationFailed';
  }
}

export class NotFound extends Error {
  constructor(readonly kind: string, readonly id: string) {
    super(`${kind} ${JSON.stringify(id)} not found`);
    this.name = 'NotFound';
  }
}

/** The operation does not fit the object's current state (e.g. exec on a stopped workspace). */
export class StateConflict extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'StateConflict';
  }
}

export class AlreadyExists extends Error {
  constructor(readonly kind: string, readonly id: string) {
    super(`${kind} ${JSON.stringify(id)} already exists`);
    this.name = 'AlreadyExists';
  }
}

export type LimitKind = 'sandbox' | 'namespace';

export class LimitReached extends Error {
  constructor(readonly kind: LimitKind, message: string, readonly current: number, readonly max: number) {
    super(message);
    this.name = 'LimitReached';
  }
}

export class Forbidden extends Error {
  constructor(message: string, readonly reason: 'scope' | 'namespace_suspended' | 'runtime_disabled' = 'scope') {
    super(message);
    this.name = 'Forbidden';
  }
}

export class Unauthenticated extends Error {
  constructor(message: string, readonly reason: 'missing' | 'invalid' = 'invalid') {
    super(message);
    this.name = 'Unauthenticated';
  }
}

/** Too many attempts from one caller: try again after `retryAfterMs`. */
export class RateLimited extends Error {
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
    this.name = 'RateLimited';
  }
}

/** The workspace's sandbox or agent cannot be reached right now. */
export class Unavailable extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'Unavailable';
  }
}

/** A provisioning failure recorded as data (microsandbox's boot-error.json). */
export interface ProvisionFailure {
  stage: 'image' | 'disk' | 'network' | 'vmm' | 'agent' | 'host';
  message: string;
  errno?: string;
  hint?: string;
}

export class ProvisionFailed extends Error {
  constructor(readonly failure: ProvisionFailure) {
    super(`${failure.stage}: ${failure.message}`);
    this.name = 'ProvisionFailed';
  }
}

/** A namespace's spending quota (plus overdraft) is used up and its policy blocks new work. */
export class QuotaExceeded extends Error {
  constructor(readonly namespace: string, readonly service: string, readonly used: number, readonly limit: number) {
    super(`namespace ${namespace} used ${used.toFixed(4)} credits of its ${service} quota (${limit} + overdraft): new work is blocked until the quota is raised or reset`);
    this.name = 'QuotaExceeded';
  }
}
