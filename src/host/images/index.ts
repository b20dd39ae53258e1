/** The image store's public surface. */
export * from './types.ts';
export { DEFAULT_ARTIFACTS_DIR, artifactPaths, artifactsRoot, type ArtifactPaths } from './paths.ts';
export { CATALOG, IMAGE_ENV, findRecipe, type ImageRecipe } from './catalog.ts';
export { AgentBundleError, ImageBuildError, ImageNotBuiltError, UnknownImageError } from './errors.ts';
export { NODE_PIN, NODE_VERSION, NPM_PIN, ensureNodeRuntime, type NodeRuntime } from './node-runtime.ts';
export { ensureAgentDrive, type EnsureAgentDriveOptions, type EnsuredAgentDrive } from './agent-drive.ts';
export {
  createBuildContext, ensureImage, listCatalog, readImageManifest, resolveImage,
  type BuildContext, type EnsuredImage, type StoreOptions,
} from './store.ts';
export type { ImageManifest } from './manifest.ts';
