import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageDefaultWorkload, isInteractiveDefault } from '../../src/control/image-defaults.ts';

const base = { env: ['PATH=/usr/bin', 'PGDATA=/var/lib/postgresql/data'], workingDir: '/', user: 'root' };

test('an image ENTRYPOINT + CMD becomes the cmd workload, with the workspace env on top of the image env', () => {
  const body = imageDefaultWorkload({ ...base, entrypoint: ['/usr/local/bin/hearth-postgres-entrypoint'], cmd: ['postgres'] }, { env: ['POSTGRES_PASSWORD=s3cret', 'PATH=/opt/bin'] });
  assert.deepEqual(body, {
    id: 'cmd', name: 'cmd', cmd: ['/usr/local/bin/hearth-postgres-entrypoint', 'postgres'],
    env: ['PATH=/opt/bin', 'PGDATA=/var/lib/postgresql/data', 'POSTGRES_PASSWORD=s3cret'], working_dir: '/',
    labels: { 'hearth.role': 'cmd', 'hearth.source': 'image' },
  });
});

test('the caller\'s config.cmd replaces the image default; no command means no workload; USER is kept', () => {
  assert.equal(imageDefaultWorkload({ ...base, entrypoint: null, cmd: ['srv'] }, { cmd: 'other' }), null);
  assert.equal(imageDefaultWorkload({ ...base, entrypoint: null, cmd: null }, {}), null);
  assert.equal(imageDefaultWorkload({ ...base, user: 'app', workingDir: '/srv', cmd: ['./serve'] }, {})?.user, 'app');
  assert.equal(imageDefaultWorkload({ ...base, user: 'app', workingDir: '/srv', cmd: ['./serve'] }, {})?.working_dir, '/srv');
});

test('an interactive default (a bare shell or REPL) is not a service and starts nothing', () => {
  const cases: Array<[string[] | null, string[] | null, boolean]> = [
    [null, ['bash'], true], [null, ['python3'], true], [['docker-entrypoint.sh'], ['node'], true], [['/bin/sh'], null, true],
    [null, ['python3', 'app.py'], false], [['docker-entrypoint.sh'], ['postgres'], false], [['/bin/sh', '-c'], ['echo hi'], false],
  ];
  for (const [entrypoint, cmd, want] of cases) assert.equal(isInteractiveDefault({ entrypoint, cmd }), want, JSON.stringify([entrypoint, cmd]));
  assert.equal(imageDefaultWorkload({ ...base, entrypoint: null, cmd: ['bash'] }, {}), null);
});
