/**
 * The plan's nftables tables on the host (rules and sets rendered by
 * nft.ts): whole-ruleset loads, each workspace's policy applied as a diff,
 * port elements, and the DNS forwarder's egress grants. Every write goes
 * through this object, so what it remembers mirrors the kernel sets.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedHostnames, policyWithoutPeer, type NetworkPolicy } from '../../core/network-policy.ts';
import { KeyedMutex } from '../../core/keyed-mutex.ts';
import { HostCommandError, hostRun } from '../exec.ts';
import { wrap } from './errors.ts';
import {
  DNS_GRANT_MIN_S, elementsWithoutPeer, parseLoaded, policyElements, renderAttachElements, renderDetachElements, renderDnsGrants, renderPolicyUpdate, renderRuleset, tableName,
  type DnsGrant, type LoadedState, type PolicyElements, type RulesetOptions, type WorkspacePort,
} from './nft.ts';
import { RwLock } from './rw-lock.ts';
import type { NetworkPlan, Slot } from './slot.ts';

export class Firewall {
  readonly table: string;
  /** Whole-ruleset loads (reload, sync) exclude element updates, which may run together. */
  private readonly lock = new RwLock();
  /** One policy transaction at a time per workspace (the diff below depends on the last one). */
  private readonly perIp = new KeyedMutex();
  /**
   * The policy last applied per workspace address: what a policy update
   * diffs against. Mirrors the kernel sets because every write goes through
   * this object; reload() loads it from the kernel and sync() from the store.
   */
  private readonly applied = new Map<string, { policy: NetworkPolicy | null; elements: PolicyElements }>();
  /** DNS grants already in the kernel and still fresh (src|dst|name → expiry ms): saves an nft run per repeated lookup. */
  private readonly granted = new Map<string, number>();

  constructor(private readonly plan: NetworkPlan, private readonly runDir: string, private readonly nft: string, readonly options: RulesetOptions) {
    this.table = tableName(plan);
  }

  /** The ruleset file last applied by reload()/sync() (for operators; never read back). */
  get rulesetFile(): string {
    return join(this.runDir, `${this.table}.nft`);
  }

  /**
   * (Re)load the tables, carrying over every set element already loaded
   * (ports, policies, DNS grants): on a live host (hearthd restart) the
   * rules are reset without cutting anyone off.
   */
  async reload(): Promise<void> {
    await this.lock.exclusive(async () => {
      const loaded = await this.loaded();
      await this.load({ ports: loaded.ports, policies: loaded.policies, dnsGrants: loaded.dnsGrants });
      this.applied.clear();
      for (const p of loaded.policies) this.applied.set(p.ip, { policy: null, elements: p });
    });
  }

  /**
   * Open (or, with null, close) the gateway to hearthd's workspace-facing
   * listener on `port` (src/core/internal-plane.ts). A rule change, so a
   * reload: every loaded element is carried over.
   */
  async publishHearth(port: number | null): Promise<void> {
    this.options.hearthPort = port;
    try {
      await this.reload();
    } catch (e) {
      throw wrap('ensure', e, 'check the nft table (nft list table inet ' + this.table + ')');
    }
  }

  /** Render and apply the whole ruleset (caller holds the exclusive lock). */
  private async load(state: { ports: WorkspacePort[]; policies: PolicyElements[]; dnsGrants: DnsGrant[] }): Promise<void> {
    const text = renderRuleset({ plan: this.plan, ...state, options: this.options });
    await hostRun(this.nft, ['-f', '-'], { input: text });
    await mkdir(this.runDir, { recursive: true });
    await writeFile(this.rulesetFile, text);
    this.granted.clear();
  }

  /**
   * Make the loaded policies exactly `policies` (every workspace the store
   * knows, running or not) in one transaction: no duplicates, no gaps.
   * Ports stay as attached, except those of addresses no workspace owns;
   * DNS grants stay when their workspace still allows that name.
   */
  async sync(policies: NetworkPolicy[]): Promise<{ policies: number; ports: number; dropped: { ports: string[]; dnsGrants: number } }> {
    try {
      return await this.lock.exclusive(async () => {
        const byIp = new Map(policies.map((p) => [p.ip, p]));
        const elements = policies.map((p) => policyElements(p, this.options));
        const loaded = await this.loaded();
        const ports = loaded.ports.filter((p) => byIp.has(p.ip));
        const dnsGrants = loaded.dnsGrants.filter((g) => {
          const p = byIp.get(g.src);
          return p !== undefined && allowedHostnames(p).includes(g.name);
        });
        await this.load({ ports, policies: elements, dnsGrants });
        this.applied.clear();
        policies.forEach((p, i) => this.applied.set(p.ip, { policy: p, elements: elements[i]! }));
        return {
          policies: policies.length, ports: ports.length,
          dropped: { ports: loaded.ports.filter((p) => !byIp.has(p.ip)).map((p) => p.hostIf), dnsGrants: loaded.dnsGrants.length - dnsGrants.length },
        };
      });
    } catch (e) {
      throw wrap('sync', e, 'check the nft table (nft list table inet ' + this.table + ')');
    }
  }

  /**
   * Apply one workspace's policy live (create, start, a PATCH of ingress,
   * egress, allow_internet or outbound IP): only the difference from the
   * last applied one, in one transaction; DNS grants for names no longer
   * allowed are revoked in the same transaction. Existing connections are
   * re-checked on their next packet, so a revocation cuts them.
   */
  async setPolicy(policy: NetworkPolicy): Promise<void> {
    const elements = policyElements(policy, this.options);
    try {
      await this.lock.shared(() => this.perIp.run(policy.ip, async () => {
        const before = this.applied.get(policy.ip);
        const allowed = new Set(allowedHostnames(policy));
        const hadNames = before?.policy === null || (before?.policy ? allowedHostnames(before.policy).some((n) => !allowed.has(n)) : false);
        const revoke = hadNames ? (await this.dnsGrantsOf(policy.ip)).filter((g) => !allowed.has(g.name)) : [];
        const text = renderPolicyUpdate(this.plan, before?.elements ?? null, elements, revoke);
        if (text) await hostRun(this.nft, ['-f', '-'], { input: text });
        this.applied.set(policy.ip, { policy, elements });
        for (const g of revoke) this.forgetGrant(g);
      }));
    } catch (e) {
      throw wrap('policy', e, `is the network set up? (HostNetwork.ensure for bridge ${this.plan.bridge})`);
    }
  }

  /**
   * Remove a workspace's policy and DNS grants (workspace deleted), and its
   * address from every other policy's ingress sources and egress hosts: a
   * rule naming an address goes with the workspace that held it, so the
   * slot's next holder is trusted by nobody (the control plane also removes
   * the address from the stored lists and applies them; this is the same
   * cut at the firewall, at once). Idempotent.
   */
  async removePolicy(ip: string): Promise<void> {
    try {
      await this.lock.shared(() => this.perIp.run(ip, async () => {
        const before = this.applied.get(ip);
        // Its own grants, and other workspaces' grants to its address (a name that resolved to it).
        const revoke = await this.dnsGrantsOf(ip, true);
        const text = renderPolicyUpdate(this.plan, before?.elements ?? null, null, revoke);
        if (text) await this.tolerantNft(text);
        this.applied.delete(ip);
        for (const g of revoke) this.forgetGrant(g);
      }));
      // Each other policy under its own lock, one at a time (never two per-address locks held together).
      for (const [other, entry] of [...this.applied]) {
        if (!elementsWithoutPeer(entry.elements, ip)) continue;
        await this.lock.shared(() => this.perIp.run(other, async () => {
          const cur = this.applied.get(other);
          const next = cur && elementsWithoutPeer(cur.elements, ip);
          if (!cur || !next) return;
          const text = renderPolicyUpdate(this.plan, cur.elements, next, []);
          if (text) await this.tolerantNft(text);
          this.applied.set(other, { policy: cur.policy && policyWithoutPeer(cur.policy, ip), elements: next });
        }));
      }
    } catch (e) {
      throw wrap('policy', e);
    }
  }

  /** The policy applied for an address (the DNS forwarder's view). */
  policyOf(ip: string): NetworkPolicy | undefined {
    return this.applied.get(ip)?.policy ?? undefined;
  }

  /**
   * Allow `src` to reach the addresses a DNS answer gave it for `name`
   * (called by the DNS forwarder before it relays the answer, so the
   * workspace's first connection already passes). Grants last at least
   * DNS_GRANT_MIN_S, the record's TTL if longer, and are renewed by traffic.
   */
  async grantDns(src: string, name: string, answers: { ip: string; ttl: number }[]): Promise<void> {
    const now = Date.now();
    const grants = answers
      .map((a) => ({ src, dst: a.ip, name, timeoutS: Math.max(DNS_GRANT_MIN_S, a.ttl) }))
      .filter((g) => (this.granted.get(grantKey(g)) ?? 0) - now < (g.timeoutS * 1000) / 2);
    if (!grants.length) return;
    try {
      await this.lock.shared(async () => {
        await hostRun(this.nft, ['-f', '-'], { input: renderDnsGrants(this.plan, grants) });
        for (const g of grants) this.granted.set(grantKey(g), now + g.timeoutS * 1000);
      });
    } catch (e) {
      throw wrap('dns', e);
    }
  }

  private forgetGrant(g: DnsGrant): void {
    for (const k of this.granted.keys()) if (k.startsWith(`${g.src}|${g.dst}|`)) this.granted.delete(k);
  }

  private async dnsGrantsOf(ip: string, orTo = false): Promise<DnsGrant[]> {
    const r = await hostRun(this.nft, ['-j', 'list', 'set', 'inet', this.table, 'egress_dns'], { okCodes: [0, 1] });
    if (r.code !== 0) return [];
    return parseLoaded(r.stdout, '').dnsGrants.filter((g) => g.src === ip || (orTo && g.dst === ip));
  }

  /** A workspace port's set element: until it exists the bridge table drops every frame from the port. */
  async addPort(port: WorkspacePort): Promise<void> {
    await this.lock.shared(() => hostRun(this.nft, ['-f', '-'], { input: renderAttachElements(this.plan, port) }));
  }

  async removePort(slot: Pick<Slot, 'hostIf' | 'ip' | 'mac'>): Promise<void> {
    await this.lock.shared(() => this.tolerantNft(renderDetachElements(this.plan, slot)));
  }

  /** Delete both tables (and forget what they held). */
  async drop(): Promise<void> {
    const t = this.table;
    await this.lock.exclusive(() => hostRun(this.nft, ['-f', '-'], { input: `table inet ${t}\ndelete table inet ${t}\ntable bridge ${t}\ndelete table bridge ${t}\n` }));
    this.applied.clear();
    this.granted.clear();
  }

  /** Everything loaded in the two tables (empty when they do not exist yet). */
  async loaded(): Promise<LoadedState> {
    const t = this.table;
    const [inet, bridge] = await Promise.all([
      hostRun(this.nft, ['-j', 'list', 'table', 'inet', t], { okCodes: [0, 1] }),
      hostRun(this.nft, ['-j', 'list', 'table', 'bridge', t], { okCodes: [0, 1] }),
    ]);
    return parseLoaded(inet.code === 0 ? inet.stdout : '', bridge.code === 0 ? bridge.stdout : '');
  }

  /** nft -f where a missing table means there is nothing to remove. */
  private async tolerantNft(text: string): Promise<void> {
    const r = await hostRun(this.nft, ['-f', '-'], { input: text, okCodes: [0, 1] });
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw new HostCommandError([this.nft, '-f', '-'], r.code, r.stderr);
  }
}

function grantKey(g: Pick<DnsGrant, 'src' | 'dst' | 'name'>): string {
  return `${g.src}|${g.dst}|${g.name}`;
}
