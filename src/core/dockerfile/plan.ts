/**
 * Instructions → a build plan: stages (`FROM … AS name`), and in each stage
 * the steps with every variable substituted and every path made absolute,
 * plus the image config (Env, WorkingDir, User, Entrypoint, Cmd, ExposedPorts,
 * Labels) after each step. Pure: the executor (src/host/images/build/) does
 * the I/O and only needs to look at a step to know what to do.
 *
 * Rules follow Docker's: ARGs before the first FROM are usable in FROM lines
 * and re-declared inside a stage to be seen there; build args override ARG
 * defaults; ARG values reach RUN's environment but not the image; ENV values
 * reach both; RUN, CMD and ENTRYPOINT are not substituted (the shell does it).
 */
import path from 'node:path/posix';
import { DockerfileError, parsePairs, splitWords, type Instruction } from './parse.ts';
import { substitute, unescapeDollars } from './substitute.ts';

export interface ImageConfig {
  env: string[];
  workingDir: string;
  user: string;
  entrypoint: string[] | null;
  cmd: string[] | null;
  exposedPorts: string[];
  labels: Record<string, string>;
}

export type StageBase =
  | { kind: 'scratch' }
  | { kind: 'stage'; index: number }
  /** Anything the image resolver knows: catalog id, pulled or built image, `snapshot:<id>`. */
  | { kind: 'image'; name: string };

export interface Stage {
  index: number;
  name: string | null;
  line: number;
  base: StageBase;
  instructions: Instruction[];
}

export type CopySource = { kind: 'context' } | { kind: 'stage'; index: number } | { kind: 'image'; name: string };

export type BuildStep =
  | { kind: 'run'; line: number; source: string; argv: string[]; env: string[]; cwd: string; user: string; network: 'none' | 'host-egress' }
  | {
      kind: 'copy'; line: number; source: string; add: boolean; from: CopySource;
      /** Paths as written (relative to the context or the source stage's root). */
      sources: string[];
      /** Absolute destination; ends in `/` when it names a directory. */
      dest: string;
      chown: string | null; chmod: number | null;
    }
  | { kind: 'workdir'; line: number; source: string; dir: string }
  | { kind: 'config'; line: number; source: string };

export interface StagePlan {
  stage: Stage;
  steps: BuildStep[];
  /** The config after each step (same index as `steps`). */
  configs: ImageConfig[];
  config: ImageConfig;
}

export const SCRATCH_CONFIG: ImageConfig = {
  env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  workingDir: '/', user: 'root', entrypoint: null, cmd: null, exposedPorts: [], labels: {},
};

const NAME_RE = /^[a-z][a-z0-9_.-]*$/;

/** Split into stages, FROM lines substituted with the global ARGs. */
export function splitStages(instructions: Instruction[], buildArgs: Record<string, string> = {}): { stages: Stage[]; globalArgs: Map<string, string> } {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.name === 'ARG' && stages.length === 0) {
      for (const [k, v] of parsePairs('ARG', ins.raw, ins.line)) {
        const value = buildArgs[k] ?? (v === undefined ? undefined : unescapeDollars(substitute(v, globalArgs, ins.line)));
        if (value !== undefined) globalArgs.set(k, value);
        else globalArgs.delete(k);
      }
      continue;
    }
    if (ins.name === 'FROM') {
      const words = splitWords(substitute(ins.raw, globalArgs, ins.line), ins.line);
      let name: string | null = null;
      if (words.length === 3 && words[1]!.toLowerCase() === 'as') name = words[2]!.toLowerCase();
      else if (words.length !== 1) throw new DockerfileError(ins.line, 'FROM takes an image and optionally AS name (FROM image [AS name])');
      const ref = words[0]!;
      if (!ref) throw new DockerfileError(ins.line, 'FROM names no image (an ARG in it is empty?)');
      if (name !== null) {
        if (!NAME_RE.test(name)) throw new DockerfileError(ins.line, `stage name ${JSON.stringify(name)} must match ${NAME_RE.source}`);
        if (stages.some((s) => s.name === name)) throw new DockerfileError(ins.line, `stage name ${name} is used twice`);
      }
      if (ins.flags.platform && ins.flags.platform !== 'linux/amd64') throw new DockerfileError(ins.line, `FROM --platform=${ins.flags.platform}: this host builds linux/amd64 only`);
      const lower = ref.toLowerCase();
      const earlier = stages.find((s) => s.name === lower);
      const base: StageBase = lower === 'scratch' ? { kind: 'scratch' } : earlier ? { kind: 'stage', index: earlier.index } : { kind: 'image', name: ref };
      stages.push({ index: stages.length, name, line: ins.line, base, instructions: [] });
      continue;
    }
    stages[stages.length - 1]!.instructions.push(ins);
  }
  return { stages, globalArgs };
}

function envMap(env: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env) {
    const eq = e.indexOf('=');
    if (eq > 0) m.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return m;
}

function setEnv(env: string[], key: string, value: string): string[] {
  const out = env.filter((e) => !e.startsWith(`${key}=`));
  out.push(`${key}=${value}`);
  return out;
}

function parseChmod(v: string | undefined, line: number): number | null {
  if (v === undefined) return null;
  if (!/^[0-7]{3,4}$/.test(v)) throw new DockerfileError(line, `--chmod=${v} must be octal (e.g. 0755)`);
  return parseInt(v, 8);
}

function commandOf(ins: Instruction): string[] {
  return ins.json ?? ['/bin/sh', '-c', ins.raw];
}

function parsePort(word: string, line: number): string {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(word);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw new DockerfileError(line, `EXPOSE ${word}: expected PORT or PORT/tcp|udp with 1 ≤ PORT ≤ 65535`);
  return `${port}/${(m[2] ?? 'tcp').toLowerCase()}`;
}

/**
 * Plan one stage on top of its base's config. `stageIndex(name)` resolves a
 * COPY --from name to an earlier stage (else it names an image).
 */
export function planStage(
  stage: Stage,
  base: ImageConfig,
  opts: { buildArgs?: Record<string, string>; globalArgs?: Map<string, string>; stages: Stage[]; usedArgs?: Set<string> },
): StagePlan {
  const config: ImageConfig = { ...base, env: [...base.env], exposedPorts: [...base.exposedPorts], labels: { ...base.labels } };
  const args = new Map<string, string>();
  const steps: BuildStep[] = [];
  const configs: ImageConfig[] = [];
  let cmdSetHere = false;
  // Variables in effect: ENV, with this stage's ARGs under them (an ENV of the same name wins, as in Docker).
  const vars = () => new Map([...args, ...envMap(config.env)]);
  const abs = (p: string) => path.resolve(config.workingDir || '/', p);
  const push = (s: BuildStep) => {
    steps.push(s);
    configs.push({ ...config, env: [...config.env], exposedPorts: [...config.exposedPorts], labels: { ...config.labels } });
  };
  for (const ins of stage.instructions) {
    const sub = (s: string) => substitute(s, vars(), ins.line);
    const at = { line: ins.line, source: ins.source };
    switch (ins.name) {
      case 'ARG':
        for (const [k, v] of parsePairs('ARG', ins.raw, ins.line)) {
          opts.usedArgs?.add(k);
          const value = opts.buildArgs?.[k] ?? (v === undefined ? opts.globalArgs?.get(k) : unescapeDollars(sub(v)));
          if (value !== undefined) args.set(k, value);
          else args.set(k, '');
        }
        push({ kind: 'config', ...at });
        break;
      case 'ENV':
        for (const [k, v] of parsePairs('ENV', sub(ins.raw), ins.line)) config.env = setEnv(config.env, k, unescapeDollars(v ?? ''));
        push({ kind: 'config', ...at });
        break;
      case 'LABEL':
        for (const [k, v] of parsePairs('LABEL', sub(ins.raw), ins.line)) config.labels[k] = unescapeDollars(v ?? '');
        push({ kind: 'config', ...at });
        break;
      case 'WORKDIR': {
        const words = splitWords(sub(ins.raw), ins.line);
        if (words.length !== 1) throw new DockerfileError(ins.line, 'WORKDIR takes one path');
        config.workingDir = abs(words[0]!);
        push({ kind: 'workdir', ...at, dir: config.workingDir });
        break;
      }
      case 'USER': {
        const words = splitWords(sub(ins.raw), ins.line);
        if (words.length !== 1 || !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(words[0]!)) {
          throw new DockerfileError(ins.line, 'USER takes one user[:group] (name or numeric id)');
        }
        config.user = words[0]!;
        push({ kind: 'config', ...at });
        break;
      }
      case 'EXPOSE':
        for (const w of splitWords(sub(ins.raw), ins.line)) {
          const p = parsePort(w, ins.line);
          if (!config.exposedPorts.includes(p)) config.exposedPorts.push(p);
        }
        push({ kind: 'config', ...at });
        break;
      case 'ENTRYPOINT':
        config.entrypoint = commandOf(ins);
        // As in Docker: setting ENTRYPOINT resets a CMD inherited from the base image.
        if (!cmdSetHere) config.cmd = null;
        push({ kind: 'config', ...at });
        break;
      case 'CMD':
        config.cmd = commandOf(ins);
        cmdSetHere = true;
        push({ kind: 'config', ...at });
        break;
      case 'RUN': {
        const network = ins.flags.network ?? 'none';
        if (network !== 'none' && network !== 'default') throw new DockerfileError(ins.line, `RUN --network=${network}: use none (the default) or default (the workspace egress rules)`);
        const env = [...config.env];
        for (const [k, v] of args) if (!env.some((e) => e.startsWith(`${k}=`))) env.push(`${k}=${v}`);
        push({ kind: 'run', ...at, argv: commandOf(ins), env, cwd: config.workingDir || '/', user: config.user || 'root', network: network === 'none' ? 'none' : 'host-egress' });
        break;
      }
      case 'COPY':
      case 'ADD': {
        const words = ins.json ?? splitWords(sub(ins.raw), ins.line);
        if (words.length < 2) throw new DockerfileError(ins.line, `${ins.name} needs a source and a destination`);
        const dest = words[words.length - 1]!;
        const sources = words.slice(0, -1);
        let from: CopySource = { kind: 'context' };
        if (ins.flags.from !== undefined) {
          const f = sub(ins.flags.from).toLowerCase();
          const byName = opts.stages.find((s) => s.name === f);
          const byIndex = /^\d+$/.test(f) ? opts.stages[Number(f)] : undefined;
          const target = byName ?? byIndex;
          if (target && target.index >= stage.index) throw new DockerfileError(ins.line, `COPY --from=${f}: a stage can copy only from an earlier stage`);
          from = target ? { kind: 'stage', index: target.index } : { kind: 'image', name: sub(ins.flags.from) };
        }
        if (ins.name === 'ADD') {
          for (const s of sources) if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) throw new DockerfileError(ins.line, `ADD ${s}: URLs are not fetched (a build reaches no network); download into the context first`);
        }
        if (sources.length > 1 && !dest.endsWith('/')) throw new DockerfileError(ins.line, `${ins.name} with several sources needs a destination directory ending in /`);
        const chown = ins.flags.chown !== undefined ? sub(ins.flags.chown) : null;
        if (chown !== null && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(chown)) throw new DockerfileError(ins.line, `--chown=${chown} must be user[:group]`);
        const absDest = abs(dest) + (dest.endsWith('/') || dest === '.' ? '/' : '');
        push({ kind: 'copy', ...at, add: ins.name === 'ADD', from, sources, dest: absDest.replace(/\/+$/, '/') === '/' ? '/' : absDest, chown, chmod: parseChmod(ins.flags.chmod, ins.line) });
        break;
      }
      case 'FROM':
        throw new DockerfileError(ins.line, 'FROM inside a stage'); // splitStages starts a new stage at every FROM
    }
  }
  return { stage, steps, configs, config };
}
