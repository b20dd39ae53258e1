/// <reference lib="dom" />
/**
 * How the page talks to hearthd: /console/api/* (the API, as the signed-in
 * key) and /console/rt/* (a workspace's runtime, with its runtime token).
 * Every state-changing request carries the CSRF token; errors come back as
 * ApiError with the contract's code and message.
 */

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

let csrf = '';
export function setCsrf(token: string): void {
  csrf = token;
}

function csrfToken(): string {
  if (csrf) return csrf;
  const m = /(?:^|;\s*)hearth_csrf=([^;]*)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]!) : '';
}

/** Called when a request finds the session gone: the app shows the sign-in page. */
let onSignedOut: () => void = () => undefined;
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function request<T = Json>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const h: Record<string, string> = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') h['x-csrf-token'] = csrfToken();
  let res: Response;
  try {
    res = await fetch(url, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch (err) {
    throw new ApiError(0, 'network', `hearthd did not answer: ${(err as Error).message}`);
  }
  const text = await res.text();
  let json: Json = {};
  try {
    json = text ? JSON.parse(text) as Json : {};
  } catch {
    json = { message: text };
  }
  if (!res.ok || json.success === false) {
    if (res.status === 401 && url.startsWith('/console/api/')) onSignedOut();
    throw new ApiError(res.status, String(json.code ?? json.error ?? 'error'), String(json.message ?? `HTTP ${res.status}`));
  }
  return json as T;
}

/** The API, as the signed-in key. */
export const api = <T = Json>(method: string, path: string, body?: unknown) => request<T>(method, `/console/api${path}`, body);

export interface RuntimeAccess {
  token: string;
  baseUrl: string;
  call<T = Json>(method: string, path: string, body?: unknown): Promise<T>;
}

const runtimes = new Map<string, Promise<RuntimeAccess>>();

/** A workspace's runtime: enables runtime API access for it (idempotent) and mints a token. */
export function runtime(workspaceId: string, fresh = false): Promise<RuntimeAccess> {
  let r = runtimes.get(workspaceId);
  if (!r || fresh) {
    r = api(`POST`, `/workspace/${encodeURIComponent(workspaceId)}/runtime-api-access/enable`, {}).then((t) => ({
      token: String(t.token), baseUrl: String(t.base_url ?? ''),
      call: <T = Json>(method: string, path: string, body?: unknown) => request<T>(method, `/console/rt${path}`, body, { 'x-runtime-token': String(t.token) }),
    }));
    r.catch(() => runtimes.delete(workspaceId));
    runtimes.set(workspaceId, r);
  }
  return r;
}

/** An SSE stream from the API; returns its closer. */
export function stream(path: string, onEvent: (e: Json) => void, onError?: () => void): () => void {
  const es = new EventSource(`/console/api${path}`);
  es.onmessage = (m) => {
    try {
      onEvent(JSON.parse(m.data) as Json);
    } catch {
      // a keep-alive or a non-JSON line
    }
  };
  es.onerror = () => onError?.();
  return () => es.close();
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
