/**
 * A tiny segment-trie router. Static segments beat parameters at every
 * level (spec §1.6: `/exec/stream` is not a task id, `/files/search/init`
 * is not a search), with backtracking so `/a/:x/c` still matches when a
 * static `/a/b` branch exists but has no `c` child.
 */

export type Params = Record<string, string>;

interface TrieNode<H> {
  statics: Map<string, TrieNode<H>>;
  param?: { name: string; node: TrieNode<H> };
  handlers: Map<string, H>;
}

export type RouteMatch<H> =
  | { kind: 'found'; handler: H; params: Params }
  | { kind: 'method_not_allowed'; allowed: string[] }
  | { kind: 'not_found' };

function newNode<H>(): TrieNode<H> {
  return { statics: new Map(), handlers: new Map() };
}

/** Split a path into segments, dropping empty ones (`/files/` ≡ `/files`). */
export function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

export class Router<H> {
  private readonly root: TrieNode<H> = newNode();
  private readonly routes: string[] = [];

  add(method: string, pattern: string, handler: H): void {
    let node = this.root;
    for (const seg of splitPath(pattern)) {
      if (seg.startsWith(':')) {
        const name = seg.slice(1);
        if (!node.param) node.param = { name, node: newNode() };
        else if (node.param.name !== name) {
          throw new Error(`route ${pattern}: parameter :${name} conflicts with :${node.param.name}`);
        }
        node = node.param.node;
      } else {
        let next = node.statics.get(seg);
        if (!next) {
          next = newNode();
          node.statics.set(seg, next);
        }
        node = next;
      }
    }
    const m = method.toUpperCase();
    if (node.handlers.has(m)) throw new Error(`route ${m} ${pattern} registered twice`);
    node.handlers.set(m, handler);
    this.routes.push(`${m} ${pattern}`);
  }

  /** Every registered route as `METHOD /pattern` (the route-surface snapshot). */
  list(): string[] {
    return [...this.routes];
  }

  /** `segments` must already be URL-decoded. */
  match(method: string, segments: string[]): RouteMatch<H> {
    const params: Params = {};
    const node = this.walk(this.root, segments, 0, params);
    if (!node) return { kind: 'not_found' };
    const handler = node.handlers.get(method.toUpperCase());
    if (handler) return { kind: 'found', handler, params };
    return { kind: 'method_not_allowed', allowed: [...node.handlers.keys()] };
  }

  private walk(node: TrieNode<H>, segs: string[], i: number, params: Params): TrieNode<H> | undefined {
    if (i === segs.length) return node.handlers.size > 0 ? node : undefined;
    const seg = segs[i] as string;
    const stat = node.statics.get(seg);
    if (stat) {
      const found = this.walk(stat, segs, i + 1, params);
      if (found) return found;
    }
    if (node.param) {
      const found = this.walk(node.param.node, segs, i + 1, params);
      if (found) {
        params[node.param.name] = seg;
        return found;
      }
    }
    return undefined;
  }
}
