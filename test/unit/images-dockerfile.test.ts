import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DockerfileError, SCRATCH_CONFIG, isIgnored, parseDockerfile, parseDockerignore, planStage, splitStages, substitute, type StagePlan,
} from '../../src/core/dockerfile/index.ts';
import { toHttpError } from '../../src/api/errors.ts';

function plan(text: string, buildArgs: Record<string, string> = {}): StagePlan[] {
  const { stages, globalArgs } = splitStages(parseDockerfile(text), buildArgs);
  return stages.map((s) => planStage(s, SCRATCH_CONFIG, { buildArgs, globalArgs, stages }));
}

function refused(text: string, line: number, message: RegExp): void {
  assert.throws(() => plan(text), (e: unknown) => {
    assert.ok(e instanceof DockerfileError, String(e));
    assert.equal(e.line, line);
    assert.match(e.message, new RegExp(`^Dockerfile line ${line}: `));
    assert.match(e.message, message);
    return true;
  });
}

const EVERY = `# syntax is ignored, comments are skipped
ARG BASE=debian-12
FROM \${BASE} AS build
ARG GREETING=hello
ENV APP_HOME=/srv/app \\
    MODE="two words"
WORKDIR $APP_HOME
COPY --chown=1000:1000 src/ ./src/
ADD notes.txt /opt/
RUN echo "$GREETING" > /greeting && \\
    # a comment inside a continuation
    cat /greeting
USER 1000:1000
EXPOSE 8080 9090/udp
LABEL org.example.name="demo app" version=1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $MODE"]

FROM scratch
COPY --from=build /greeting /greeting
COPY --from=0 /srv/app/src/ /app/
`;

test('every instruction is parsed with the line it starts on, continuations and comments inside them joined', () => {
  const ins = parseDockerfile(EVERY);
  assert.deepEqual(ins.map((i) => [i.name, i.line]), [
    ['ARG', 2], ['FROM', 3], ['ARG', 4], ['ENV', 5], ['WORKDIR', 7], ['COPY', 8], ['ADD', 9], ['RUN', 10], ['USER', 13],
    ['EXPOSE', 14], ['LABEL', 15], ['ENTRYPOINT', 16], ['CMD', 17], ['FROM', 19], ['COPY', 20], ['COPY', 21],
  ]);
  const run = ins.find((i) => i.name === 'RUN')!;
  assert.equal(run.raw, 'echo "$GREETING" > /greeting &&     cat /greeting');
  assert.deepEqual(ins.find((i) => i.name === 'COPY')!.flags, { chown: '1000:1000' });
  assert.deepEqual(ins.find((i) => i.name === 'ENTRYPOINT')!.json, ['/bin/sh', '-c']);
});

test('the plan substitutes ARG and ENV where Docker does, and the config after the last step is the image config', () => {
  const [build, final] = plan(EVERY);
  assert.deepEqual(build!.stage.base, { kind: 'image', name: 'debian-12' });
  assert.equal(build!.stage.name, 'build');
  const kinds = build!.steps.map((s) => s.kind);
  assert.deepEqual(kinds, ['config', 'config', 'workdir', 'copy', 'copy', 'run', 'config', 'config', 'config', 'config', 'config']);
  const [copy, add] = build!.steps.filter((s) => s.kind === 'copy');
  assert.deepEqual(copy, {
    kind: 'copy', line: 8, source: 'COPY --chown=1000:1000 src/ ./src/', add: false, from: { kind: 'context' },
    sources: ['src/'], dest: '/srv/app/src/', chown: '1000:1000', chmod: null,
  });
  assert.equal(add!.kind === 'copy' && add!.add, true);
  const run = build!.steps.find((s) => s.kind === 'run')!;
  assert.ok(run.kind === 'run');
  // RUN is not substituted: the shell sees $GREETING, set from the ARG in its environment (not in the image).
  assert.deepEqual(run.argv, ['/bin/sh', '-c', 'echo "$GREETING" > /greeting &&     cat /greeting']);
  assert.ok(run.env.includes('GREETING=hello'));
  assert.equal(run.cwd, '/srv/app');
  assert.equal(run.user, 'root');
  assert.equal(run.network, 'none');
  assert.deepEqual(build!.config, {
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_HOME=/srv/app', 'MODE=two words'],
    workingDir: '/srv/app', user: '1000:1000', entrypoint: ['/bin/sh', '-c'], cmd: ['echo $MODE'],
    exposedPorts: ['8080/tcp', '9090/udp'], labels: { 'org.example.name': 'demo app', version: '1' },
  });
  assert.deepEqual(final!.stage.base, { kind: 'scratch' });
  assert.deepEqual(final!.steps.map((s) => s.kind === 'copy' && s.from), [{ kind: 'stage', index: 0 }, { kind: 'stage', index: 0 }]);
  assert.deepEqual(final!.config, SCRATCH_CONFIG);
});

test('build args override ARG defaults, and global ARGs are seen in a stage only when re-declared', () => {
  const text = 'ARG V=1\nFROM debian-12\nRUN echo\nARG V\nRUN echo\nARG W=$V-x\nENV E=$W\n';
  const [p] = plan(text, { V: '9' });
  const runs = p!.steps.filter((s) => s.kind === 'run');
  assert.ok(runs[0]!.kind === 'run' && !runs[0]!.env.some((e) => e.startsWith('V=')));
  assert.ok(runs[1]!.kind === 'run' && runs[1]!.env.includes('V=9'));
  assert.ok(p!.config.env.includes('E=9-x'));
  // ARGs never reach the image's config.
  assert.ok(!p!.config.env.some((e) => e.startsWith('V=') || e.startsWith('W=')));
});

test('substitution: forms, defaults, single quotes and escaped dollars', () => {
  const vars = new Map([['A', 'x'], ['EMPTY', '']]);
  const cases: Array<[string, string]> = [
    ['$A', 'x'], ['${A}y', 'xy'], ['${NOPE:-d}', 'd'], ['${EMPTY:-d}', 'd'], ['${EMPTY-d}', ''], ['${A:+alt}', 'alt'],
    ['${NOPE:+alt}', ''], ["'$A'", "'$A'"], ['\\$A', '\\$A'], ['$', '$'], ['a$1', 'a$1'], ['${NOPE:-${A}}', 'x'],
  ];
  for (const [input, want] of cases) assert.equal(substitute(input, vars, 1), want, input);
  assert.throws(() => substitute('${A', vars, 4), /line 4: unterminated/);
  assert.throws(() => substitute('${A B}', vars, 5), /line 5: bad substitution/);
});

test('ENV legacy form, LABEL quoting, WORKDIR relative to the previous one, EXPOSE normalized', () => {
  const [p] = plan('FROM scratch\nENV GREETING hello world\nWORKDIR /a\nWORKDIR b/../c\nEXPOSE 80/TCP 80\n');
  assert.ok(p!.config.env.includes('GREETING=hello world'));
  assert.equal(p!.config.workingDir, '/a/c');
  assert.deepEqual(p!.config.exposedPorts, ['80/tcp']);
});

test('ENTRYPOINT resets a CMD from the base image, not one set in the same stage', () => {
  const base = { ...SCRATCH_CONFIG, cmd: ['base-cmd'] };
  const { stages } = splitStages(parseDockerfile('FROM x\nENTRYPOINT ["/e"]\n'));
  assert.equal(planStage(stages[0]!, base, { stages }).config.cmd, null);
  const two = splitStages(parseDockerfile('FROM x\nCMD ["c"]\nENTRYPOINT ["/e"]\n'));
  assert.deepEqual(planStage(two.stages[0]!, base, { stages: two.stages }).config.cmd, ['c']);
  const shell = splitStages(parseDockerfile('FROM x\nCMD echo hi\n'));
  assert.deepEqual(planStage(shell.stages[0]!, base, { stages: shell.stages }).config.cmd, ['/bin/sh', '-c', 'echo hi']);
});

test('RUN --network takes none (the default) or default; anything else is refused', () => {
  const [p] = plan('FROM x\nRUN --network=default apt-get update\n');
  assert.ok(p!.steps[0]!.kind === 'run' && p!.steps[0]!.network === 'host-egress');
  refused('FROM x\nRUN --network=host true\n', 2, /--network=host/);
});

test('the escape directive changes the continuation character', () => {
  const ins = parseDockerfile('# escape=`\nFROM x\nRUN echo a `\n  b\nCOPY c:\\dir\\ /x/\n');
  assert.equal(ins[1]!.raw, 'echo a   b');
  assert.equal(ins.length, 3);
});

test('bad Dockerfiles are refused with the line they are on', () => {
  refused('FROM x\nRUN true\nFROBNICATE now\n', 3, /unknown instruction FROBNICATE/);
  refused('FROM x\nHEALTHCHECK CMD true\n', 2, /HEALTHCHECK is not supported/);
  refused('RUN true\nFROM x\n', 1, /RUN before the first FROM/);
  refused('# nothing\n', 1, /no FROM instruction/);
  refused('FROM x\nCOPY onlyone\n', 2, /needs a source and a destination/);
  refused('FROM x\nCOPY a b c\n', 2, /destination directory ending in \//);
  refused('FROM x\nCOPY --chmod=999 a /b\n', 2, /must be octal/);
  refused('FROM x\nCOPY --mount=x a /b\n', 2, /COPY does not take --mount/);
  refused('FROM x\nADD https://example.com/f /f\n', 2, /URLs are not fetched/);
  refused('FROM x\nEXPOSE 70000\n', 2, /EXPOSE 70000/);
  refused('FROM x\nUSER a b\n', 2, /USER takes one/);
  refused('FROM x\nENV\n', 2, /ENV needs arguments/);
  refused('FROM x\nENV ONLYKEY\n', 2, /has no value/);
  refused('FROM x AS a\nFROM y AS a\n', 2, /used twice/);
  refused('FROM x as b\nCOPY --from=b /a /b\n', 2, /only from an earlier stage/);
  refused('FROM x\nRUN <<EOF\necho\nEOF\n', 2, /heredocs/);
  refused('FROM x\nLABEL "unterminated\n', 2, /unterminated " quote/);
  refused('FROM a b\n', 1, /FROM takes an image/);
});

test('a Dockerfile error is a 400 validation error naming the line', () => {
  let err: unknown;
  try {
    plan('FROM x\nNOPE\n');
  } catch (e) {
    err = e;
  }
  const http = toHttpError(err);
  assert.equal(http.status, 400);
  assert.equal(http.code, 'validation_error');
  assert.match(http.message, /^Dockerfile line 2: unknown instruction NOPE$/);
  assert.match(http.hint ?? '', /instructions: FROM, RUN/);
});

test('.dockerignore: globs, ** across directories, negation, last match wins', () => {
  const rules = parseDockerignore('# comment\nnode_modules\n*.log\n!keep.log\n**/secret*\n/build/\ndocs/**/*.tmp\n');
  const cases: Array<[string, boolean]> = [
    ['node_modules', true], ['node_modules/x/y.js', true], ['a.log', true], ['keep.log', false], ['sub/a.log', false],
    ['secret.txt', true], ['a/b/secret.key', true], ['build/out', true], ['src/build', false], ['docs/x/y/z.tmp', true],
    ['docs/z.tmp', true], ['src/main.go', false], ['./node_modules', true],
  ];
  for (const [p, want] of cases) assert.equal(isIgnored(rules, p), want, p);
});
