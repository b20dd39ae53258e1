/** The image store's public surface. */
export * from './types.ts';
export { DEFAULT_ARTIFACTS_DIR, artifactPaths, artifactsRoot, type ArtifactPaths } from './paths.ts';
export { CATALOG, IMAGE_ENV, findRecipe, type ImageRecipe } from './catalog.ts';
export {
  AgentBundleError, BlobVerificationError, ImageBuildError, ImageNotBuiltError, ImageNotFoundError, InvalidImageError,
  PullNotAllowedError, RegistryError, UnknownImageError,
} from './errors.ts';
export { NODE_PIN, NODE_VERSION, NPM_PIN, ensureNodeRuntime, type NodeRuntime } from './node-runtime.ts';
export { ensureAgentDrive, type EnsureAgentDriveOptions, type EnsuredAgentDrive } from './agent-drive.ts';
export {
  createBuildContext, ensureImage, listCatalog, localImage, pullByName, readImageManifest, resolveImage,
  type BuildContext, type EnsuredImage, type StoreOptions,
} from './store.ts';
export type { ImageManifest } from './manifest.ts';
export { SEED_ALIASES, findSeedAlias } from './aliases.ts';
export { imageProcess, mergeEnv, type ImageProcess, type ProcessOverride } from './process.ts';
export { ensureImageArtifact, type DerivedArtifact } from './derived.ts';
export { collectGarbage, type GcOptions, type GcReport } from './gc.ts';
export { importArchive, type ImportOptions, type ImportResult } from './oci/import.ts';
export { registryConfig, type RegistryConfig } from './oci/auth.ts';
export { ImageReferenceError, familiarReference, formatReference, parseReference, type ImageReference } from './oci/reference.ts';
export type { PullEvent } from './oci/pull.ts';
