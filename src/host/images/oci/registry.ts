/**
 * A registry v2 client of our own (fetch + streaming digest checks), with
 * what pulling needs and nothing more: token auth (anonymous or with
 * credentials, Bearer or Basic), manifests and indexes by tag or digest, and
 * blobs streamed to disk while their sha256 and size are checked. Every
 * request has an idle timeout: a registry that stops sending is abandoned
 * with an error that says so, instead of hanging a create. Every URL
 * (registry, redirects, token realm) goes through the outbound policy of
 * oci/outbound.ts, and what a registry says in an error body is never
 * repeated in an error (only a registry error code such as MANIFEST_UNKNOWN):
 * a tenant-chosen registry must not be able to reflect a host service's
 * answer back through the API.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobVerificationError, ImageNotFoundError, PullNotAllowedError, RegistryError } from '../errors.ts';
import { header as headerOf, httpGet, type HttpResponse } from './http.ts';
import { basicAuth, outboundPolicy, parseChallenge, registryBaseUrl, tokenUrl, type RegistryConfig } from './auth.ts';
import { OutboundRefusedError, type OutboundPolicy } from './outbound.ts';
import { imageLimits, limitError, type ImageLimits } from './limits.ts';
import { MANIFEST_ACCEPT, type Descriptor } from './media.ts';
import { familiarReference, type ImageReference } from './reference.ts';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const USER_AGENT = 'hearth-image-store/1';

export interface FetchedManifest {
  bytes: Buffer;
  contentType: string;
  /** sha256 of the bytes, verified against the requested digest when there was one. */
  digest: string;
}

export interface BlobProgress {
  /** Bytes received so far for this blob. */
  bytes: number;
  total: number;
}

export class RegistryClient {
  private readonly tokens = new Map<string, { header: string; expires: number }>();

  private readonly policy: OutboundPolicy;
  private readonly limits: ImageLimits;

  constructor(readonly cfg: RegistryConfig) {
    this.policy = outboundPolicy(cfg);
    this.limits = cfg.limits ?? imageLimits();
  }

  private where(ref: ImageReference): string {
    return ref.registry === 'docker.io' && this.cfg.mirror ? `${this.cfg.mirror} (mirror of docker.io)` : ref.registry;
  }

  /**
   * One request with auth and the idle timeout. The returned response's body
   * must be read through `readBody`/`streamBody`, which keep resetting the
   * timer, or cancelled.
   */
  private async request(ref: ImageReference, path: string, headers: Record<string, string>, what: string): Promise<{ res: HttpResponse; timer: IdleTimer }> {
    const url = `${registryBaseUrl(ref.registry, this.cfg)}${path}`;
    const scope = `repository:${ref.repository}:pull`;
    const key = `${ref.registry}|${scope}`;
    const send = async (auth?: string) => {
      const timer = new IdleTimer(this.cfg.timeoutMs);
      try {
        const res = await httpGet(url, { 'user-agent': USER_AGENT, ...headers, ...(auth ? { authorization: auth } : {}) }, timer.signal, this.policy);
        timer.touch();
        return { res, timer };
      } catch (e) {
        timer.stop();
        throw this.networkError(ref, e, timer, what);
      }
    };
    const cached = this.tokens.get(key);
    let { res, timer } = await send(cached && cached.expires > Date.now() ? cached.header : undefined);
    if (res.status !== 401) return { res, timer };

    const challenge = parseChallenge(headerOf(res, 'www-authenticate') ?? '');
    res.body.destroy();
    timer.stop();
    const creds = this.cfg.credentials[ref.registry];
    let header: string;
    if (challenge?.scheme === 'bearer') {
      let realm: string;
      try {
        realm = tokenUrl(challenge, scope);
      } catch {
        throw new RegistryError(this.where(ref), 'answered 401 with a Bearer challenge whose realm is not a URL');
      }
      header = `Bearer ${await this.token(ref, realm, creds ? basicAuth(creds) : undefined)}`;
    } else if (challenge?.scheme === 'basic') {
      if (!creds) throw this.denied(ref, 'the registry asks for a user name and password');
      header = basicAuth(creds);
    } else {
      throw new RegistryError(this.where(ref), `answered 401 with an unsupported challenge ${JSON.stringify(headerOf(res, 'www-authenticate'))}`);
    }
    ({ res, timer } = await send(header));
    if (res.status === 401 || res.status === 403) {
      res.body.destroy();
      timer.stop();
      throw this.denied(ref, creds ? 'the registry refused the configured credentials' : 'anonymous pulls are refused');
    }
    return { res, timer };
  }

  private denied(ref: ImageReference, reason: string): ImageNotFoundError {
    return new ImageNotFoundError(familiarReference(ref), `pull access denied (${reason}): the repository does not exist or needs credentials`,
      `if it is private, add credentials for ${ref.registry} to the file named by HEARTH_REGISTRY_AUTH_FILE (Docker config.json format)`);
  }

  /** Fetch a Bearer token (Docker's token protocol: `token` or `access_token`). */
  private async token(ref: ImageReference, url: string, auth: string | undefined): Promise<string> {
    const timer = new IdleTimer(this.cfg.timeoutMs);
    let res: HttpResponse;
    try {
      res = await httpGet(url, { 'user-agent': USER_AGENT, ...(auth ? { authorization: auth } : {}) }, timer.signal, this.policy);
    } catch (e) {
      timer.stop();
      throw this.networkError(ref, e, timer, 'fetching an auth token');
    }
    const text = await readBody(res, timer, 64 * 1024).then((b) => b.toString('utf8')).catch((e) => {
      throw this.networkError(ref, e, timer, 'reading an auth token');
    });
    if (res.status === 401 || res.status === 403) throw this.denied(ref, auth ? 'the token service refused the configured credentials' : 'the token service refused an anonymous token');
    if (!ok(res)) throw new RegistryError(this.where(ref), `token service answered HTTP ${res.status}`);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(text);
    } catch {
      throw new RegistryError(this.where(ref), 'token service answered something that is not JSON');
    }
    const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw new RegistryError(this.where(ref), 'token service answered without a token');
    const ttl = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    this.tokens.set(`${ref.registry}|repository:${ref.repository}:pull`, { header: `Bearer ${token}`, expires: Date.now() + (ttl - 5) * 1000 });
    return token;
  }

  private networkError(ref: ImageReference, e: unknown, timer: IdleTimer, what: string): Error {
    if (e instanceof ImageNotFoundError || e instanceof RegistryError || e instanceof BlobVerificationError || e instanceof PullNotAllowedError) return e;
    if (e instanceof Error && e.name === 'ImageLimitError') return e;
    const refused = e instanceof OutboundRefusedError ? e : (e as { cause?: unknown }).cause instanceof OutboundRefusedError ? (e as { cause: OutboundRefusedError }).cause : null;
    if (refused) {
      return new PullNotAllowedError(familiarReference(ref), `pulling it would connect to ${refused.target} (${refused.reason})`,
        'registries on loopback, link-local or private addresses are only used when an operator lists them: HEARTH_PRIVATE_REGISTRIES=host[:port],…');
    }
    if (timer.fired) {
      return new RegistryError(this.where(ref), `sent nothing for ${(this.cfg.timeoutMs / 1000).toFixed(1)} s while ${what}; gave up`,
        'the registry hangs or the network is too slow: check it, or raise HEARTH_REGISTRY_TIMEOUT_MS');
    }
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ? `${cause.code}${cause.message ? ` (${cause.message})` : ''}` : (e as Error).message;
    return new RegistryError(this.where(ref), `unreachable while ${what}: ${detail}`, undefined, { cause: e });
  }

  /** GET a manifest or index by tag or digest. */
  async manifest(ref: ImageReference, reference: string): Promise<FetchedManifest> {
    const what = `fetching the manifest of ${familiarReference(ref)}`;
    const { res, timer } = await this.request(ref, `/v2/${ref.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, what);
    const bytes = await readBody(res, timer, MAX_MANIFEST_BYTES).catch((e) => {
      throw this.networkError(ref, e, timer, what);
    });
    if (res.status === 404) {
      const code = registryErrorCode(bytes);
      throw new ImageNotFoundError(familiarReference(ref), code === 'NAME_UNKNOWN' ? `repository ${ref.repository} does not exist on ${ref.registry}` : `${ref.registry} has no manifest ${reference} for ${ref.repository}${code ? ` (${code})` : ''}`);
    }
    if (!ok(res)) throw new RegistryError(this.where(ref), `answered HTTP ${res.status} while ${what}${codeOf(bytes)}`);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new BlobVerificationError(reference, this.where(ref), `the manifest's content hashes to ${digest}`);
    }
    const claimed = headerOf(res, 'docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest) {
      throw new BlobVerificationError(claimed, this.where(ref), `the manifest the registry sent hashes to ${digest}, not to the Docker-Content-Digest it announced`);
    }
    return { bytes, contentType: headerOf(res, 'content-type') ?? '', digest };
  }

  /** GET a small blob (an image config) into memory, verified. */
  async blob(ref: ImageReference, desc: Descriptor, maxBytes = 8 * 1024 * 1024): Promise<Buffer> {
    if (desc.size > maxBytes) throw new RegistryError(this.where(ref), `blob ${desc.digest} is ${desc.size} bytes, more than the ${maxBytes} allowed for a config`);
    const what = `fetching blob ${desc.digest}`;
    const { res, timer } = await this.request(ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {}, what);
    const bytes = await readBody(res, timer, maxBytes + 1).catch((e) => {
      throw this.networkError(ref, e, timer, what);
    });
    this.checkBlobStatus(ref, res, desc, bytes);
    verifyBytes(bytes, desc, this.where(ref));
    return bytes;
  }

  private checkBlobStatus(ref: ImageReference, res: HttpResponse, desc: Descriptor, body: Buffer): void {
    if (res.status === 404) throw new ImageNotFoundError(familiarReference(ref), `the registry lost blob ${desc.digest} (BLOB_UNKNOWN)`, 'the image on the registry is incomplete: push it again');
    if (!ok(res)) throw new RegistryError(this.where(ref), `answered HTTP ${res.status} for blob ${desc.digest}${codeOf(body)}`);
  }

  /**
   * Stream a blob into `file` (created, must not exist), hashing as it
   * arrives. Throws BlobVerificationError when the size or digest is wrong;
   * the caller removes the file on any error.
   */
  async blobToFile(ref: ImageReference, desc: Descriptor, file: string, onProgress?: (p: BlobProgress) => void): Promise<void> {
    const what = `downloading blob ${desc.digest}`;
    if (desc.size > this.limits.maxCompressedBytes) {
      throw limitError('maxCompressedBytes', this.limits, `layer ${desc.digest} of ${familiarReference(ref)} is ${desc.size} bytes, more than ${this.limits.maxCompressedBytes}`);
    }
    const { res, timer } = await this.request(ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {}, what);
    if (!ok(res)) {
      const body = await readBody(res, timer, 64 * 1024).catch(() => Buffer.alloc(0));
      this.checkBlobStatus(ref, res, desc, body);
    }
    const h = createHash('sha256');
    let bytes = 0;
    const source = this.where(ref);
    const check = new Transform({
      transform(chunk: Buffer, _enc, done) {
        timer.touch();
        bytes += chunk.length;
        if (bytes > desc.size) return done(new BlobVerificationError(desc.digest, source, `more than the ${desc.size} bytes the manifest declares`));
        h.update(chunk);
        onProgress?.({ bytes, total: desc.size });
        done(null, chunk);
      },
    });
    try {
      await pipeline(res.body, check, createWriteStream(file, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 }));
    } catch (e) {
      throw this.networkError(ref, e, timer, what);
    } finally {
      timer.stop();
    }
    if (bytes !== desc.size) throw new BlobVerificationError(desc.digest, source, `got ${bytes} bytes, the manifest declares ${desc.size}`);
    const got = `sha256:${h.digest('hex')}`;
    if (got !== desc.digest) throw new BlobVerificationError(desc.digest, source, `its content hashes to ${got}`);
  }
}

/** Check an in-memory blob against its descriptor. */
export function verifyBytes(bytes: Buffer, desc: Descriptor, source: string): void {
  if (bytes.length !== desc.size) throw new BlobVerificationError(desc.digest, source, `got ${bytes.length} bytes, the descriptor declares ${desc.size}`);
  const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (got !== desc.digest) throw new BlobVerificationError(desc.digest, source, `its content hashes to ${got}`);
}

/**
 * The first error code of a registry error body (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`),
 * only when it looks like one (upper case letters and `_`): nothing else of a body is ever repeated.
 */
export function registryErrorCode(body: Buffer): string | null {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
    const code = doc.errors?.[0]?.code;
    return typeof code === 'string' && /^[A-Z][A-Z_]{0,63}$/.test(code) ? code : null;
  } catch {
    return null;
  }
}

/** ` (CODE)` for an error body with a registry error code, else nothing. */
function codeOf(body: Buffer): string {
  const code = registryErrorCode(body);
  return code ? ` (${code})` : '';
}

function ok(res: HttpResponse): boolean {
  return res.status >= 200 && res.status < 300;
}

/** Read a whole (small) body, resetting the idle timer on every chunk; refuses more than `max` bytes. */
async function readBody(res: HttpResponse, timer: IdleTimer, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      timer.touch();
      n += chunk.length;
      if (n > max) {
        res.body.destroy();
        throw new Error(`response larger than ${max} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } finally {
    timer.stop();
  }
}

/** Aborts a request when nothing has arrived for `ms`. */
class IdleTimer {
  private readonly ctrl = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  fired = false;

  constructor(private readonly ms: number) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.ctrl.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.ctrl.abort(new Error(`idle for ${this.ms} ms`));
    }, this.ms);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
