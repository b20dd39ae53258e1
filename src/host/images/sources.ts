/**
 * Debian package sources for image builds, taken from the host's own apt
 * configuration (never a hard-coded mirror): the deb822 `.sources` files and
 * one-line `.list` files apt itself reads. The entries for the target suite
 * (`bookworm`, `bookworm-updates`, `bookworm-security`) are rendered as one
 * deb822 text that mmdebstrap reads on stdin (mirror argument `-`).
 *
 * Pure parsing/rendering here; `hostSources()` is the only I/O.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run } from './exec.ts';

/** One apt source: the fields of a deb822 stanza (keys as written, values raw). */
export interface AptSource {
  /** Where it came from, for messages. */
  origin: string;
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  enabled: boolean;
  /** Other fields (Signed-By, Architectures, Trusted, …) kept verbatim, continuation lines included. */
  extra: Array<[string, string]>;
}

const LIST_FIELDS = new Set(['types', 'uris', 'suites', 'components', 'enabled']);

/** Parse a deb822 `.sources` file. Comments and blank-line separated stanzas as apt reads them. */
export function parseDeb822Sources(text: string, origin = 'deb822'): AptSource[] {
  const out: AptSource[] = [];
  const stanzas = text.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/);
  stanzas.forEach((stanza, i) => {
    const fields: Array<[string, string]> = [];
    for (const raw of stanza.split('\n')) {
      if (/^\s*#/.test(raw) || raw.trim() === '') continue;
      if (/^[ \t]/.test(raw)) {
        const last = fields[fields.length - 1];
        if (last) last[1] += `\n${raw}`;
        continue;
      }
      const m = /^([A-Za-z0-9-]+):[ \t]*(.*)$/.exec(raw);
      if (m) fields.push([m[1] as string, m[2] as string]);
    }
    if (fields.length === 0) return;
    const get = (k: string) => fields.find(([f]) => f.toLowerCase() === k)?.[1] ?? '';
    const words = (k: string) => get(k).split(/\s+/).filter(Boolean);
    out.push({
      origin: `${origin}#${i + 1}`,
      types: words('types'),
      uris: words('uris'),
      suites: words('suites'),
      components: words('components'),
      enabled: !/^(no|false|0)$/i.test(get('enabled').trim()),
      extra: fields.filter(([f]) => !LIST_FIELDS.has(f.toLowerCase())),
    });
  });
  return out;
}

const ONE_LINE_OPTION_FIELDS: Record<string, string> = {
  'signed-by': 'Signed-By',
  arch: 'Architectures',
  trusted: 'Trusted',
  lang: 'Languages',
  target: 'Targets',
};

/** Parse a one-line-style `.list` file (`deb [signed-by=…] URI suite comp…`). */
export function parseOneLineSources(text: string, origin = 'list'): AptSource[] {
  const out: AptSource[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) return;
    const extra: Array<[string, string]> = [];
    for (const opt of (m[2] ?? '').split(/\s+/).filter(Boolean)) {
      const [k, v] = opt.split('=', 2) as [string, string | undefined];
      const field = ONE_LINE_OPTION_FIELDS[k.toLowerCase()];
      if (field && v !== undefined) extra.push([field, v.replace(/,/g, ' ')]);
    }
    out.push({
      origin: `${origin}:${i + 1}`,
      types: [m[1] as string],
      uris: [m[3] as string],
      suites: [m[4] as string],
      components: (m[5] ?? '').split(/\s+/).filter(Boolean),
      enabled: true,
      extra,
    });
  });
  return out;
}

/** Suites that belong to `suite`'s release: itself and its `-updates`/`-security` pockets (not backports). */
export function suiteBelongs(candidate: string, suite: string): boolean {
  if (candidate === suite) return true;
  if (!candidate.startsWith(`${suite}-`)) return false;
  return candidate !== `${suite}-backports` && candidate !== `${suite}-backports-sloppy` && candidate !== `${suite}-proposed-updates`;
}

/** Keep the enabled binary (`deb`) sources for `suite`, narrowed to that suite's pockets. */
export function selectSources(sources: AptSource[], suite: string): AptSource[] {
  const out: AptSource[] = [];
  for (const s of sources) {
    if (!s.enabled || !s.types.includes('deb') || s.uris.length === 0) continue;
    const suites = s.suites.filter((x) => suiteBelongs(x, suite));
    if (suites.length === 0) continue;
    out.push({ ...s, types: ['deb'], suites });
  }
  return out;
}

/**
 * The same archive for another release: the host's entries for `from`
 * (`bookworm`, `-updates`, `-security`) renamed to `to` (`trixie`, …). Used
 * when the host names no source for `to` itself: same mirrors, same keyring.
 */
export function retargetSources(sources: AptSource[], from: string, to: string): AptSource[] {
  return selectSources(sources, from).map((s) => ({ ...s, origin: `${s.origin} (as ${to})`, suites: s.suites.map((x) => `${to}${x.slice(from.length)}`) }));
}

/** More pockets of the archive that serves `suite` itself (`bookworm-backports`), from the same stanzas. */
export function extraPockets(sources: AptSource[], suite: string, extra: string[]): AptSource[] {
  if (extra.length === 0) return [];
  return sources.filter((s) => s.suites.includes(suite)).map((s) => ({ ...s, origin: `${s.origin} (+${extra.join(',')})`, suites: [...extra] }));
}

/** Render sources as one deb822 text (what mmdebstrap reads with mirror `-`). */
export function renderDeb822(sources: AptSource[]): string {
  return sources
    .map((s) => {
      const lines = [`Types: ${s.types.join(' ')}`, `URIs: ${s.uris.join(' ')}`, `Suites: ${s.suites.join(' ')}`];
      if (s.components.length) lines.push(`Components: ${s.components.join(' ')}`);
      for (const [k, v] of s.extra) lines.push(`${k}: ${v}`);
      return `${lines.join('\n')}\n`;
    })
    .join('\n');
}

/**
 * What the sources contribute to an image's identity: the suites and
 * components, not the mirror URLs (a different mirror of the same archive
 * builds the same image).
 */
export function sourcesIdentity(sources: AptSource[]): string[] {
  const set = new Set<string>();
  for (const s of sources) for (const suite of s.suites) for (const c of s.components) set.add(`${suite}/${c}`);
  return [...set].sort();
}

/** Parse `apt-config dump` output into key → value (last assignment wins). */
export function parseAptConfigDump(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+"(.*)";\s*$/.exec(line.trim());
    if (m) out.set(m[1] as string, m[2] as string);
  }
  return out;
}

/** Host apt options that change how packages are fetched, forwarded to mmdebstrap as `--aptopt`. */
export const FORWARDED_APT_OPTIONS = [
  'Acquire::http::Proxy',
  'Acquire::https::Proxy',
  'Acquire::Check-Valid-Until',
  'Acquire::Check-Date',
];

export function forwardedAptOptions(config: Map<string, string>): string[] {
  const out: string[] = [];
  for (const key of FORWARDED_APT_OPTIONS) {
    const v = config.get(key);
    if (v !== undefined && v !== '') out.push(`${key} "${v}";`);
  }
  return out;
}

export interface HostSources {
  /** deb822 text for mmdebstrap's stdin. */
  text: string;
  identity: string[];
  aptOptions: string[];
  files: string[];
}

export class NoSourcesError extends Error {
  constructor(suite: string, files: string[]) {
    super(`no enabled apt source for suite ${suite} in ${files.length ? files.join(', ') : '/etc/apt (no source files)'}`);
    this.name = 'NoSourcesError';
  }
}

/**
 * Read the host's apt sources and options for building `suite`, plus
 * `extraSuites` of the same archive; a suite the host names no source for is
 * taken from the host's own release (`hostSuite`) on the same mirrors.
 */
export async function hostSources(suite: string, etcApt = '/etc/apt', opts: { extraSuites?: string[]; hostSuite?: string } = {}): Promise<HostSources> {
  const files: string[] = [];
  const all: AptSource[] = [];
  const readIf = async (file: string) => {
    try {
      return await fs.readFile(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  const main = path.join(etcApt, 'sources.list');
  const mainText = await readIf(main);
  if (mainText !== undefined) {
    files.push(main);
    all.push(...parseOneLineSources(mainText, main));
  }
  const partsDir = path.join(etcApt, 'sources.list.d');
  const parts = (await fs.readdir(partsDir).catch(() => [] as string[])).sort();
  for (const name of parts) {
    const file = path.join(partsDir, name);
    if (name.endsWith('.sources')) {
      const text = await readIf(file);
      if (text !== undefined) {
        files.push(file);
        all.push(...parseDeb822Sources(text, file));
      }
    } else if (name.endsWith('.list')) {
      const text = await readIf(file);
      if (text !== undefined) {
        files.push(file);
        all.push(...parseOneLineSources(text, file));
      }
    }
  }
  let selected = selectSources(all, suite);
  if (selected.length === 0 && opts.hostSuite && opts.hostSuite !== suite) selected = retargetSources(all, opts.hostSuite, suite);
  if (selected.length === 0) throw new NoSourcesError(suite, files);
  selected = [...selected, ...extraPockets(selected, suite, opts.extraSuites ?? [])];
  const dump = await run('apt-config', ['dump'], { allowFailure: true });
  return {
    text: renderDeb822(selected),
    identity: sourcesIdentity(selected),
    aptOptions: forwardedAptOptions(parseAptConfigDump(dump.stdout)),
    files,
  };
}
