/**
 * Image references (`python:3.12-slim`, `ghcr.io/org/app:tag@sha256:…`),
 * parsed and normalized as Docker's distribution/reference grammar does.
 * Pure: no I/O.
 *
 * Normalization: a first path component is a registry host only when it
 * contains `.` or `:` or is `localhost`; otherwise the name lives on Docker
 * Hub (`docker.io`), where one-component names are under `library/`.
 * A reference without tag or digest means `:latest`.
 */
import { ValidationFailed } from '../../../core/errors.ts';

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API actually answers. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** Registry host[:port], `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path inside the registry (`library/python`, `org/app`). */
  repository: string;
  tag: string | null;
  /** `sha256:<64 hex>` when pinned by digest. */
  digest: string | null;
  /** Whether the caller named the registry host (false: Docker Hub implied). */
  explicitRegistry: boolean;
}

/** A malformed reference: a validation error (400) that says which part is wrong. */
export class ImageReferenceError extends ValidationFailed {
  constructor(readonly reference: string, reason: string) {
    super('image', `invalid image reference ${JSON.stringify(reference)}: ${reason}`,
      'use a catalog name (GET /workspace/images) or a reference like python:3.12-slim, ghcr.io/org/app:1.0 or registry:5000/app@sha256:<64 hex>');
    this.name = 'ImageReferenceError';
  }
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const MAX_NAME = 255;

function validDomain(host: string): boolean {
  let name = host;
  const ipv6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(host);
  if (ipv6) return !ipv6[2] || Number(ipv6[2]) <= 65535;
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    const port = name.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return false;
    name = name.slice(0, colon);
  }
  return name.length > 0 && name.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Parse and normalize a reference; throws ImageReferenceError naming the bad part. */
export function parseReference(input: string): ImageReference {
  const text = input.trim();
  const bad = (reason: string) => new ImageReferenceError(input, reason);
  if (text === '') throw bad('it is empty');
  if (/\s/.test(text)) throw bad('it contains white space');

  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!ANY_DIGEST.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is not <algorithm>:<hex>`);
    if (!SHA256.test(digest)) throw bad(`only sha256 digests are supported (got ${digest.split(':')[0]}); a sha256 digest is 64 lowercase hex digits`);
  }

  let tag: string | null = null;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} must be 1–128 of [A-Za-z0-9_.-], not starting with . or -`);
  }

  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  let explicitRegistry = false;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!validDomain(first)) throw bad(`registry host ${JSON.stringify(first)} is not a host[:port]`);
    registry = first.toLowerCase();
    explicitRegistry = true;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (parts.length === 0 || parts.some((p) => p === '')) throw bad('the repository name has an empty component');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) {
      throw bad(p !== p.toLowerCase()
        ? `repository names must be lowercase (${JSON.stringify(p)})`
        : `repository component ${JSON.stringify(p)} must be lowercase letters and digits separated by ".", "_", "__" or "-"`);
    }
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (`${registry}/${repository}`.length > MAX_NAME) throw bad(`the name is longer than ${MAX_NAME} characters`);
  if (tag === null && digest === null) tag = 'latest';
  return { registry, repository, tag, digest, explicitRegistry };
}

/** Fully qualified text: `docker.io/library/python:3.12-slim`, `host:5000/app@sha256:…`. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** Docker's short form: `python:3.12-slim`, `org/app:1`, `ghcr.io/org/app:1`. */
export function familiarReference(r: ImageReference): string {
  let name = `${r.registry}/${r.repository}`;
  if (r.registry === DOCKER_HUB) name = r.repository.startsWith('library/') ? r.repository.slice('library/'.length) : r.repository;
  return `${name}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The manifest reference to ask the registry for: the digest when pinned, else the tag. */
export function manifestReference(r: ImageReference): string {
  return r.digest ?? r.tag ?? 'latest';
}

/** True for loopback registries, which speak plain HTTP as Docker assumes for them. */
export function isLoopbackRegistry(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(name) || name === '::1';
}
