/**
 * Typed errors of the image store. The two that callers of create can hit
 * extend core's domain errors so `src/api/errors.ts` maps them without
 * knowing about images: an unknown name is a validation error (400), a known
 * image that is not built yet makes the host unavailable for it (503), both
 * with a hint that says what to do next.
 */
import { Unavailable, ValidationFailed } from '../../core/errors.ts';

export class UnknownImageError extends ValidationFailed {
  /**
   * @param available ids of the images built on this host
   * @param known ids of every catalog image (built or not)
   */
  constructor(readonly image: string, readonly available: string[], known: string[] = available, hint?: string) {
    super(
      'image',
      `unknown image ${JSON.stringify(image)}`,
      hint ?? (available.length
        ? `available images: ${available.join(', ')}`
        : `no image is built on this host yet: run \`hearth setup\` (catalog: ${known.join(', ')})`),
    );
    this.name = 'UnknownImageError';
  }
}

export class ImageNotBuiltError extends Unavailable {
  constructor(readonly image: string, reason = 'is not built on this host') {
    super(`image ${JSON.stringify(image)} ${reason}`, `run \`hearth setup --images ${image}\` (as root) to build it`);
    this.name = 'ImageNotBuiltError';
  }
}

/** A build step (mmdebstrap, npm pack, extraction, …) failed. */
export class ImageBuildError extends Error {
  constructor(readonly artifact: string, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`${artifact}: ${message}`, options);
    this.name = 'ImageBuildError';
  }
}

/** The guest agent bundler (src/agent/bundle.ts) is missing or failed. */
export class AgentBundleError extends Error {
  constructor(message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentBundleError';
  }
}

/** The registry has no such repository or tag (or hides it behind credentials we lack). */
export class ImageNotFoundError extends ValidationFailed {
  constructor(readonly image: string, reason: string, hint?: string) {
    super('image', `image ${JSON.stringify(image)} not found: ${reason}`, hint ?? 'check the repository and tag; list what this host has with `hearth images list`');
    this.name = 'ImageNotFoundError';
  }
}

/** The image's documents are malformed or use a format Hearth does not support. */
export class InvalidImageError extends ValidationFailed {
  constructor(readonly image: string, reason: string, hint?: string) {
    super('image', `image ${JSON.stringify(image)} cannot be used: ${reason}`, hint);
    this.name = 'InvalidImageError';
  }
}

/** The registry could not be reached, timed out, refused our credentials or answered with a server error. */
export class RegistryError extends Unavailable {
  constructor(readonly registry: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(`registry ${registry}: ${message}`, hint ?? 'check that the registry is reachable from this host, then retry');
    this.name = 'RegistryError';
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

/** A blob's content does not match its digest (or declared size): nothing from it is used. */
export class BlobVerificationError extends Unavailable {
  constructor(readonly digest: string, readonly source: string, message: string) {
    super(`blob ${digest} from ${source} failed verification: ${message}`, 'the registry or archive holds corrupted data; nothing was unpacked from it. Re-push the image or use another copy');
    this.name = 'BlobVerificationError';
  }
}

/** The name is a valid reference but pulling it is not allowed by this host's registry policy. */
export class PullNotAllowedError extends ValidationFailed {
  constructor(readonly image: string, reason: string, hint: string) {
    super('image', `image ${JSON.stringify(image)} is not on this host and ${reason}`, hint);
    this.name = 'PullNotAllowedError';
  }
}

/**
 * An image layer (or archive) tries to write outside its own root: a path
 * with `..` or through a symlink, a hard link to something that is not a file
 * of the layer. The whole unpack is abandoned and its directory discarded.
 */
export class UnsafeLayerError extends ValidationFailed {
  constructor(readonly entry: string, reason: string) {
    super('image', `unsafe image layer: entry ${JSON.stringify(entry)} ${reason}`, 'the image archive is malformed or hostile; nothing was unpacked');
    this.name = 'UnsafeLayerError';
  }
}

/** An image is larger than this host accepts (HEARTH_IMAGE_MAX_*): nothing of it is kept. */
export class ImageLimitError extends ValidationFailed {
  constructor(readonly limit: string, readonly max: number, message: string) {
    super('image', `image refused: ${message}`, `this host accepts at most ${max} (${limit}); an operator can raise ${limit} for trusted images`);
    this.name = 'ImageLimitError';
  }
}
