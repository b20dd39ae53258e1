/**
 * `user` of a workload → uid/gid/home, resolved from the workspace's own
 * /etc/passwd and /etc/group (the image decides who exists). Accepted:
 * `name`, `uid`, `name:group`, `uid:gid` (Docker's `--user` forms). A
 * numeric uid without a passwd entry runs with gid = uid (unless `:gid` is
 * given) and home `/`. The parsers are pure; `lookupUser` reads the files.
 */
import { readFileSync } from 'node:fs';
import { validation } from '../../core/agent-protocol/errors.ts';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  name: string | null;
  home: string;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0] as string, uid, gid, home: f[5] || '/', shell: f[6] || '/bin/sh' });
  }
  return out;
}

export function parseGroup(text: string): { name: string; gid: number }[] {
  const out: { name: string; gid: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid)) out.push({ name: f[0] as string, gid });
  }
  return out;
}

const NUMERIC = /^\d+$/;

export function resolveUser(spec: string, passwd: PasswdEntry[], groups: { name: string; gid: number }[]): ResolvedUser {
  const [userPart, groupPart] = spec.split(':') as [string, string | undefined];
  let user: ResolvedUser;
  if (NUMERIC.test(userPart)) {
    const uid = Number(userPart);
    const entry = passwd.find((p) => p.uid === uid);
    user = entry ? { uid, gid: entry.gid, name: entry.name, home: entry.home } : { uid, gid: uid, name: null, home: '/' };
  } else {
    const entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw validation('user', `user ${JSON.stringify(userPart)} does not exist in this workspace's /etc/passwd`);
    user = { uid: entry.uid, gid: entry.gid, name: entry.name, home: entry.home };
  }
  if (groupPart !== undefined) {
    if (NUMERIC.test(groupPart)) user.gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw validation('user', `group ${JSON.stringify(groupPart)} does not exist in this workspace's /etc/group`);
      user.gid = g.gid;
    }
  }
  if (user.uid > 0xfffffffe || user.gid > 0xfffffffe) throw validation('user', 'uid and gid must be below 4294967295');
  return user;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function lookupUser(spec: string): ResolvedUser {
  return resolveUser(spec, parsePasswd(readOr('/etc/passwd')), parseGroup(readOr('/etc/group')));
}
