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
  constructor(readonly image: string, readonly available: string[], known: string[] = available) {
    super(
      'image',
      `unknown image ${JSON.stringify(image)}`,
      available.length
        ? `available images: ${available.join(', ')}`
        : `no image is built on this host yet: run \`hearth setup\` (catalog: ${known.join(', ')})`,
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
