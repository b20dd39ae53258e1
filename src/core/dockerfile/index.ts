/** Dockerfile parsing and build planning (pure); the executor is src/host/images/build/. */
export { DockerfileError, INSTRUCTIONS, parseDockerfile, parsePairs, splitWords, type Instruction, type InstructionName } from './parse.ts';
export { substitute } from './substitute.ts';
export { SCRATCH_CONFIG, planStage, splitStages, type BuildStep, type CopySource, type ImageConfig, type Stage, type StageBase, type StagePlan } from './plan.ts';
export { cleanContextPath, isIgnored, mayReinclude, parseDockerignore, type IgnoreRule } from './ignore.ts';
