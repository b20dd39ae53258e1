/**
 * LocalHost: the HostDriver of this machine. It owns the bridge and firewall
 * (HostNetwork), the isolation drivers, the image store and the agent drive,
 * and turns a workspace into a SandboxSpec. Readiness means the agent
 * answers /health over the workspace's own network interface.
 */
import { AGENT_PORT, CLAIM_ROUTE, REKEY_ROUTE, type AgentEndpoint } from '../core/agent-protocol.ts';
import { agentHealth, agentRequest, readAgentBody } from './agent-client.ts';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { HostDriver, OrphanSweep, SandboxRef } from './host-driver.ts';
import type { Capabilities, DiskUsage, Driver, DriverName, OverlayListing, SandboxSpec, SandboxState, SandboxStats, SnapshotSupport } from './drivers/driver.ts';
import type { AgentDrive, ImageCatalogEntry, ResolvedImage } from './images/types.ts';
import { HostNetwork } from './network/host-network.ts';
import { slotCapacity, slotFor, type NetworkPlan } from './network/slot.ts';
import { INTERNAL_NAMES } from '../core/internal-plane.ts';
import { DnsForwarder, hostUpstreams, parseUpstream } from './network/dns/forwarder.ts';
import { buildPolicy, isIpv4, type NetworkPolicy } from '../core/network-policy.ts';
import { ContainerDriver, ContainerDriverError } from './drivers/container/driver.ts';
import { MicrovmDriver, MicrovmDriverError } from './drivers/microvm/driver.ts';
import { vmUidRange } from './drivers/microvm/context.ts';
import { ensureAgentDrive, listCatalog, resolveImage } from './images/index.ts';
import type { PullEvent } from './images/oci/pull.ts';
import type { HostBuildRequest } from './host-driver.ts';
import { buildImage, type BuildEvent } from './images/build/execute.ts';
import { buildOwner } from './images/build/owner.ts';
import { runLimits } from './images/build/sandbox.ts';
import { artifactPaths } from './images/paths.ts';
import type { ImageManifest } from './images/manifest.ts';
import { HostSnapshots } from './snapshots/host.ts';
import type { HostSnapshot, SnapshotOptions } from './snapshots/types.ts';
import { ProvisionFailed, StateConflict, ValidationFailed, type ProvisionFailure } from '../core/errors.ts';
import { readTail } from './log-cap.ts';

/** Containers: a generous bound on the agent's first answer (node cold start). */
const AGENT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_PIDS_LIMIT = 1024;

export interface LocalHostOptions {
  dataDir: string;
  log: Logger;
  driver: 'auto' | DriverName;
  network: NetworkPlan;
  artifactsDir?: string;
  /** SNAT address for workspace egress (`--outbound-ip`); must be an address of this host. Default: masquerade. */
  outboundIp?: string | null;
  /** Hearth's DNS forwarder on the gateway (hostname egress needs it). Default on. */
  dns?: boolean;
  /** Upstream resolvers for the forwarder, `IPv4[:port]` (`--dns-upstream`). Default: the host's resolv.conf. */
  dnsUpstreams?: string[];
}

/** Directories under DATA/workspaces that are workspaces' (ids made by randomId('ws_')); anything else there is left alone. */
const WORKSPACE_DIR_RE = /^ws_[a-z0-9_]+$/;

/**
 * Volatile per-instance state (runc root, pid files, the loaded nft ruleset) on tmpfs, keyed by
 * the data dir. It outlives hearthd on purpose (workspaces keep running across its restarts);
 * whoever deletes a data dir for good may delete this too.
 */
export function runDirFor(dataDir: string): string {
  return path.join('/run/hearth', createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12));
}

export async function createLocalHost(opts: LocalHostOptions): Promise<LocalHost> {
  const runDir = runDirFor(opts.dataDir);
  const network = new HostNetwork(opts.network, path.join(runDir, 'net'), {
    agentPort: AGENT_PORT, dns: opts.dns !== false, outboundIp: opts.outboundIp ?? null, vmUids: vmUidRange(slotCapacity(opts.network)),
  });
  if (opts.outboundIp) await checkHostAddress(network, opts.outboundIp, '--outbound-ip');
  // The bridge, firewall and DNS forwarder come first: drivers hand workspaces the forwarder as their resolver.
  await network.ensure();
  const dns = opts.dns === false ? null : await startDns(network, opts);
  const nameservers = dns ? { nameservers: [network.gateway] } : {};
  const container = new ContainerDriver({
    network, runDir, workspacesRoot: path.join(opts.dataDir, 'workspaces'), instance: opts.network.bridge, ...nameservers,
    // Where a start or stop spends its time, at debug level (the create bench's breakdown).
    trace: (e) => opts.log.debug({ driver: 'container', ...e, ms: Math.round(e.ms * 10) / 10 }, 'driver phase'),
  });
  const microvm = new MicrovmDriver({
    network, runDir, workspacesRoot: path.join(opts.dataDir, 'workspaces'), instance: opts.network.bridge, artifactsDir: opts.artifactsDir,
    templates: process.env.HEARTH_VM_TEMPLATES !== '0', ...nameservers,
    log: (msg, fields) => opts.log.info({ driver: 'microvm', ...fields }, msg),
  });
  const caps = [await container.probe(), await microvm.probe()];
  const chosen = chooseDriver(opts.driver, caps);
  opts.log.info({ driver: chosen.driver, reason: chosen.reason, probes: caps }, 'isolation driver selected');
  const agent = await ensureAgentDrive({ artifactsDir: opts.artifactsDir, log: (line) => opts.log.info({ step: 'agent-drive' }, line) });
  const vmOk = caps.find((c) => c.driver === 'microvm')?.available;
  const host = new LocalHost(opts, network, vmOk ? { container, microvm } : { container }, chosen.driver, caps, agent);
  host.dns = dns;
  return host;
}

/** The outbound IP must be one of this host's addresses (else replies could never come back). */
async function checkHostAddress(network: HostNetwork, ip: string, what: string): Promise<void> {
  if (!isIpv4(ip)) throw new ValidationFailed('ip', `${what} ${JSON.stringify(ip)} is not an IPv4 address`);
  const mine = await network.hostAddresses();
  if (!mine.includes(ip)) {
    throw new ValidationFailed('ip', `${what} ${ip} is not an address of this host`, mine.length ? `this host has ${mine.join(', ')}` : 'add the address to an interface first (ip addr add)');
  }
}

/** Start the DNS forwarder on the gateway; without it workspaces keep the host's resolvers and hostname egress cannot resolve. */
async function startDns(network: HostNetwork, opts: LocalHostOptions): Promise<DnsForwarder | null> {
  const upstreams = opts.dnsUpstreams?.length ? opts.dnsUpstreams.map(parseUpstream) : await hostUpstreams();
  const dns = new DnsForwarder({
    listen: network.gateway, upstreams,
    policyOf: (ip) => network.policyOf(ip),
    grant: (src, name, answers) => network.grantDns(src, name, answers),
    log: (msg, fields) => opts.log.warn({ component: 'dns', ...fields }, msg),
    localNames: () => network.publishedNames,
  });
  try {
    await dns.start();
    opts.log.info({ listen: `${network.gateway}:53`, upstreams }, 'DNS forwarder for workspaces');
    return dns;
  } catch (e) {
    opts.log.warn({ err: e }, `cannot listen on ${network.gateway}:53: workspaces keep the host's resolvers and egress hostnames will not resolve`);
    return null;
  }
}

export function chooseDriver(wanted: LocalHostOptions['driver'], caps: Capabilities[]): Capabilities {
  const by = (d: DriverName) => caps.find((c) => c.driver === d)!;
  if (wanted !== 'auto') {
    const c = by(wanted);
    if (!c.available) throw new Error(`driver ${wanted} cannot run on this host: ${c.reason}`);
    return c;
  }
  // microvm only when a real KVM boot probe succeeded (TCG works but is slow: only on request); else containers.
  const vm = by('microvm');
  if (vm.available && vm.details?.accel === 'kvm') return vm;
  const ct = by('container');
  if (ct.available) return ct;
  throw new Error(`no isolation driver can run here: ${caps.map((c) => `${c.driver}: ${c.reason}`).join('; ')} (see hearth doctor)`);
}

export class LocalHost implements HostDriver {
  readonly slotCapacity: number;
  /** The DNS forwarder on the gateway, when it runs. */
  dns: DnsForwarder | null = null;
  private readonly images = new Map<string, { image: ResolvedImage; at: number }>();
  private readonly probeAgent = new http.Agent({ keepAlive: false });

  constructor(
    private readonly opts: LocalHostOptions,
    readonly network: HostNetwork,
    private readonly drivers: Partial<Record<DriverName, Driver>>,
    readonly defaultDriver: DriverName,
    private readonly caps: Capabilities[],
    readonly agent: AgentDrive,
  ) {
    this.slotCapacity = slotCapacity(opts.network);
  }

  async capabilities(): Promise<Capabilities[]> {
    return this.caps;
  }

  async resolveImage(name: string): Promise<ResolvedImage> {
    const hit = this.images.get(name);
    if (hit && Date.now() - hit.at < 10_000) return hit.image;
    const image = await this.resolveUncached(name);
    this.images.set(name, { image, at: Date.now() });
    return image;
  }

  catalog(): Promise<ImageCatalogEntry[]> {
    return listCatalog({ artifactsDir: this.opts.artifactsDir });
  }

  private driver(name: DriverName): Driver {
    const d = this.drivers[name];
    if (!d) throw new ValidationFailed('driver', `driver ${name} is not available on this host`, 'run hearth doctor');
    return d;
  }

  /** The workspace's network policy (core/network-policy.ts), from its stored config. */
  policy(ws: Pick<SandboxRef, 'slotIndex' | 'config'>): NetworkPolicy {
    return buildPolicy(ws.config, { ip: slotFor(this.opts.network, ws.slotIndex).ip, subnet: this.opts.network.subnet, agentPort: AGENT_PORT, privateAllowed: this.opts.network.privateAllowed });
  }

  private async spec(ws: SandboxRef): Promise<SandboxSpec> {
    const image = await this.resolveImage(ws.image);
    const pids = Number(ws.config.pids_limit);
    return {
      workspaceId: ws.id, generation: ws.generation, hostname: ws.hostname, image, agent: this.agent,
      agentSecret: ws.agentSecret, agentPort: AGENT_PORT, cpus: ws.config.cpus, memoryMb: ws.config.memory_mb,
      diskSizeMb: ws.config.disk_size_mb, pidsLimit: Number.isInteger(pids) && pids >= 64 && pids <= 65536 ? pids : DEFAULT_PIDS_LIMIT,
      slot: slotFor(this.opts.network, ws.slotIndex), dir: path.join(this.opts.dataDir, 'workspaces', ws.id),
      allowInternet: ws.config.allow_internet, network: this.policy(ws), allowPtrace: ws.config.allow_ptrace === true,
      env: Array.isArray(ws.config.env) ? ws.config.env : [],
    };
  }

  async start(ws: SandboxRef): Promise<void> {
    let spec: SandboxSpec;
    try {
      spec = await this.spec(ws);
    } catch (err) {
      throw new ProvisionFailed({ stage: 'image', message: (err as Error).message, hint: 'run hearth setup to build the catalog images' });
    }
    const t0 = performance.now();
    // The policy goes in alongside the sandbox: until it is loaded the forward
    // chain drops everything the workspace sends (fail closed), and the host's
    // own path to the agent does not go through it.
    const [run, pol] = await Promise.allSettled([this.driver(ws.driver).run(spec), this.network.setPolicy(spec.network!)]);
    if (run.status === 'rejected') throw new ProvisionFailed(driverFailure(run.reason));
    if (pol.status === 'rejected') {
      throw new ProvisionFailed({ stage: 'network', message: (pol.reason as Error).message, hint: 'run hearth doctor: the bridge and nft table must exist' });
    }
    const t1 = performance.now();
    await this.waitForAgent(ws, spec);
    this.opts.log.info({ workspace: ws.id, sandbox_ms: Math.round(t1 - t0), agent_ms: Math.round(performance.now() - t1) }, 'sandbox started');
  }

  /** A sandbox for a warm pool: started with its (air-gapped) policy, ready once its agent answers the pool's secret. */
  async prestart(ws: SandboxRef): Promise<void> {
    let spec: SandboxSpec;
    try {
      spec = { ...(await this.spec(ws)), pooled: true };
    } catch (err) {
      throw new ProvisionFailed({ stage: 'image', message: (err as Error).message });
    }
    const [run, pol] = await Promise.allSettled([this.driver(ws.driver).run(spec), this.network.setPolicy(spec.network!)]);
    if (run.status === 'rejected') throw new ProvisionFailed(driverFailure(run.reason));
    if (pol.status === 'rejected') throw new ProvisionFailed({ stage: 'network', message: (pol.reason as Error).message });
    await this.waitForAgent(ws, spec);
  }

  /**
   * A pooled sandbox becomes `ws`: the driver's part of its identity (host
   * name, /etc/hosts), its firewall policy (replacing the air-gapped one)
   * and its agent's secret, all at once; ready when the agent answers with
   * the workspace's own secret. Limits and env came with the pool key.
   */
  async claim(ws: SandboxRef, poolSecret: string): Promise<void> {
    const t0 = performance.now();
    const spec = await this.spec(ws).catch((err: Error) => {
      throw new ProvisionFailed({ stage: 'image', message: err.message });
    });
    const driver = this.driver(ws.driver);
    if (!driver.claimIdentity) throw new ProvisionFailed({ stage: 'host', message: `the ${ws.driver} driver has no warm pools` });
    const endpoint = this.agentEndpoint(ws);
    const handover = async () => {
      const { response } = agentRequest({ ...endpoint, secret: poolSecret }, { method: 'POST', path: CLAIM_ROUTE, body: { secret: ws.agentSecret, env: spec.env ?? [] }, agent: this.probeAgent, timeoutMs: 5000 });
      const { status, json } = await readAgentBody(await response);
      if (status !== 200) throw new Error(`the pooled agent refused the claim: HTTP ${status} ${JSON.stringify(json).slice(0, 200)}`);
    };
    const took: Record<string, number> = {};
    const timed = <T>(name: string, p: () => Promise<T>) => p().finally(() => { took[name] = Math.round((performance.now() - t0) * 10) / 10; });
    // The driver's part first gives the sandbox its CPU weight back (a pooled one waits at the lowest), so the agent answers the handover at full speed.
    const identity = timed('identity', () => driver.claimIdentity!(spec));
    const steps = await Promise.allSettled([identity, timed('policy', () => this.network.setPolicy(spec.network!)), identity.then(() => timed('handover', handover))]);
    const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw new ProvisionFailed({ ...driverFailure(failed.reason), stage: steps[1]!.status === 'rejected' ? 'network' : 'agent' });
    const t1 = performance.now();
    await this.waitForAgent(ws, spec);
    this.opts.log.info({ workspace: ws.id, claim_ms: Math.round((t1 - t0) * 10) / 10, agent_ms: Math.round((performance.now() - t1) * 10) / 10, steps_ms: took }, 'pooled sandbox claimed');
  }

  async rekeyAgent(ws: SandboxRef, next: string): Promise<'rekeyed' | 'not-running' | 'paused' | 'too-old'> {
    const state = ws.slotIndex === null ? 'stopped' : await this.state(ws);
    // A paused agent cannot take a new secret, and its next start is a resume, not a new spec: keep the stored one.
    if (state === 'paused') return 'paused';
    if (state !== 'running') return 'not-running';
    // A request that fails is an error, not "not running": the agent may still hold the current secret.
    const { status, json } = await readAgentBody(await agentRequest({ ...this.agentEndpoint(ws), secret: ws.agentSecret }, {
      method: 'POST', path: REKEY_ROUTE, body: { secret: next }, agent: this.probeAgent, timeoutMs: 5000,
    }).response);
    if (status === 404) return 'too-old';
    if (status !== 200) throw new Error(`the agent refused the new secret: HTTP ${status} ${JSON.stringify(json).slice(0, 200)}`);
    return 'rekeyed';
  }

  /** Poll the agent's /health over the workspace network until it answers or the bound passes. */
  private async waitForAgent(ws: SandboxRef, spec: SandboxSpec): Promise<void> {
    const { ip, port } = this.agentEndpoint(ws);
    const deadline = Date.now() + AGENT_READY_TIMEOUT_MS;
    let last = '';
    // A refused connect costs microseconds: poll tightly so readiness is seen within a few ms.
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const r = await agentHealth({ ip, port, secret: ws.agentSecret }, this.probeAgent);
      if (r === true) return;
      last = r;
      // Checking the sandbox costs a runc call: only now and then.
      if (attempt % 50 === 49 && (await this.driver(ws.driver).state(spec)) !== 'running') break;
      await new Promise((res) => setTimeout(res, 3));
    }
    // Only a tail is read (the log may be megabytes): a running container's console is on its disk, a microVM's next to it.
    const tails = await Promise.all([readTail(path.join(spec.dir, 'disk', 'console.log')), readTail(path.join(spec.dir, 'console.log'))]);
    const consoleTail = (tails[0] || tails[1]).slice(-800).trim();
    throw new ProvisionFailed({
      stage: 'agent',
      message: `the guest agent did not answer on ${ip}:${port} (${last || 'sandbox exited'})${consoleTail ? `; console: ${consoleTail}` : ''}`,
      hint: 'check the image runs on x86-64 and that the agent drive is intact (hearth setup rebuilds it)',
    });
  }

  async stop(ws: SandboxRef): Promise<void> {
    await this.driver(ws.driver).stop(await this.spec(ws));
  }
  async pause(ws: SandboxRef): Promise<void> {
    await this.driver(ws.driver).pause(await this.spec(ws));
  }
  async resume(ws: SandboxRef): Promise<void> {
    await this.driver(ws.driver).resume(await this.spec(ws));
  }
  async destroy(ws: SandboxRef): Promise<void> {
    await this.driver(ws.driver).destroy(await this.specForTeardown(ws));
    // The policy lives as long as the workspace (it survives stop/start); it goes with it.
    await this.network.removePolicy(slotFor(this.opts.network, ws.slotIndex).ip);
  }
  async state(ws: SandboxRef): Promise<SandboxState> {
    return this.driver(ws.driver).state(await this.specForTeardown(ws));
  }
  async stats(ws: SandboxRef): Promise<SandboxStats | null> {
    return this.driver(ws.driver).stats(await this.specForTeardown(ws));
  }

  /** Teardown must work even when the image is gone from the store. */
  private async specForTeardown(ws: SandboxRef): Promise<SandboxSpec> {
    try {
      return await this.spec(ws);
    } catch {
      const image: ResolvedImage = { id: ws.image, ref: ws.image, layers: [], env: [], workingDir: '/', user: 'root', digest: '' };
      return {
        workspaceId: ws.id, generation: ws.generation, hostname: ws.hostname, image, agent: this.agent, agentSecret: ws.agentSecret,
        agentPort: AGENT_PORT, cpus: ws.config.cpus, memoryMb: ws.config.memory_mb, diskSizeMb: ws.config.disk_size_mb,
        pidsLimit: DEFAULT_PIDS_LIMIT, slot: slotFor(this.opts.network, ws.slotIndex), dir: path.join(this.opts.dataDir, 'workspaces', ws.id),
      };
    }
  }

  /** Grow a workspace's disk to its disk_size_mb: online where the driver and host allow it, else at its next start. */
  async resizeDisk(ws: SandboxRef): Promise<'grown' | 'next-start' | 'unchanged'> {
    const d = this.driver(ws.driver);
    if (!d.resizeDisk) return 'next-start';
    const how = await d.resizeDisk(await this.specForTeardown(ws)).catch((err: unknown) => {
      throw new ProvisionFailed(driverFailure(err));
    });
    this.opts.log.info({ workspace: ws.id, disk_size_mb: ws.config.disk_size_mb, how }, 'workspace disk resized');
    return how;
  }

  /** New cpus/memory: at once where the driver can (container cgroups), else at the next start. */
  async resizeLive(ws: SandboxRef): Promise<'applied' | 'next-start'> {
    const d = this.driver(ws.driver);
    if (!d.resizeLive) return 'next-start';
    const how = await d.resizeLive(await this.specForTeardown(ws)).catch((err: unknown) => {
      // The kernel refuses a memory limit below what the workspace uses: the caller's choice, not a host failure.
      throw new StateConflict(err instanceof Error ? err.message : String(err), 'free memory inside the workspace, pick a larger value, or restart it with the new size');
    });
    this.opts.log.info({ workspace: ws.id, cpus: ws.config.cpus, memory_mb: ws.config.memory_mb, how }, 'workspace resources changed');
    return how;
  }

  async diskUsage(ws: SandboxRef): Promise<DiskUsage | null> {
    const d = this.driver(ws.driver);
    return d.diskUsage ? d.diskUsage(await this.specForTeardown(ws)) : null;
  }

  async overlayFiles(ws: SandboxRef, limit: number, running: boolean): Promise<OverlayListing | null> {
    const d = this.driver(ws.driver);
    return d.overlayFiles ? d.overlayFiles(await this.specForTeardown(ws), limit, running) : null;
  }

  async syncDisk(ws: SandboxRef): Promise<boolean> {
    const d = this.driver(ws.driver);
    return d.syncDisk ? d.syncDisk(await this.specForTeardown(ws)) : false;
  }

  /** Apply ingress, egress, allow_internet and outbound IP live (no restart). */
  async applyNetwork(ws: SandboxRef): Promise<void> {
    await this.network.setPolicy(this.policy(ws));
  }

  /**
   * Make the firewall's policies exactly those of `all` (every workspace the
   * store knows, after reconcile): hearthd restart rebuilds the table with
   * no duplicates and no gaps; ports and DNS grants of unknown addresses go.
   */
  async syncNetwork(all: SandboxRef[]): Promise<void> {
    const r = await this.network.sync(all.map((ws) => this.policy(ws)));
    this.opts.log.info({ ...r }, 'network policies loaded from the store');
  }

  /** The SNAT address in effect for a workspace (null: the outgoing interface's address). */
  internalPlane(): { address: string; publish(port: number): Promise<void> } {
    return { address: this.network.gateway, publish: (port) => this.network.publishHearth(port, INTERNAL_NAMES) };
  }

  outboundIp(ws: Pick<SandboxRef, 'config'>): string | null {
    return isIpv4(ws.config.outbound_ip) ? ws.config.outbound_ip : this.network.defaultOutboundIp;
  }

  /** Refuse an outbound IP this host does not have. */
  async checkOutboundIp(ip: string): Promise<void> {
    await checkHostAddress(this.network, ip, 'outbound ip');
  }

  agentEndpoint(ws: Pick<SandboxRef, 'slotIndex'>): AgentEndpoint {
    return { ip: slotFor(this.opts.network, ws.slotIndex).ip, port: AGENT_PORT };
  }

  async egressBytes(ws: Pick<SandboxRef, 'slotIndex'>): Promise<number | null> {
    // /proc/self/net/dev is per network namespace (unlike /sys under nsenter).
    const name = slotFor(this.opts.network, ws.slotIndex).hostIf;
    const dev = await readFile('/proc/self/net/dev', 'utf8');
    const line = dev.split('\n').find((l) => l.trim().startsWith(`${name}:`));
    if (!line) return null;
    // Host-side receive bytes of the workspace's link = what the workspace sent.
    return Number(line.split(':')[1]!.trim().split(/\s+/)[0]);
  }

  // ---------------------------------------------------------------- images and snapshots

  private snaps?: HostSnapshots;
  private get snapshots(): HostSnapshots {
    return (this.snaps ??= new HostSnapshots({ dataDir: this.opts.dataDir, driver: (n) => this.drivers[n], spec: (ws) => this.spec(ws) }));
  }

  /** Any image name, snapshots (`snapshot:<id>`) included; pulls are logged with their progress. */
  private resolveUncached(name: string, onPull?: (e: PullEvent) => void): Promise<ResolvedImage> {
    const log = this.opts.log;
    return this.snapshots.resolve(name, (n) => resolveImage(n, {
      artifactsDir: this.opts.artifactsDir,
      onPull: (e) => {
        onPull?.(e);
        if (e.type === 'resolved') log.info({ image: e.ref, layers: e.layers, bytes: e.bytes, manifest: e.digest }, 'pulling image');
        else if (e.type === 'done') log.info({ image: e.ref, id: e.id, cached: e.cached, seconds: e.seconds, downloaded: e.downloaded }, 'image pulled');
      },
      onFallback: (alias, reason) => log.warn({ image: alias, reason }, 'official image unavailable: using the offline image'),
    }));
  }

  async buildImage(req: HostBuildRequest, onEvent?: (e: BuildEvent) => void): Promise<ImageManifest> {
    const record = await buildImage({
      ...req, paths: artifactPaths(this.opts.artifactsDir), onEvent,
      resolveBase: async (n) => this.resolveImage(req.resolveName ? await req.resolveName(n) : n),
      runcRoot: path.join(runDirFor(this.opts.dataDir), 'build-runc'), runLimits: runLimits(),
    });
    this.images.delete(req.ref);
    return record;
  }

  imageBuildOwner(name: string): Promise<{ namespace: string | null; published: boolean } | null> {
    return buildOwner(artifactPaths(this.opts.artifactsDir), name);
  }

  async pullImage(name: string, onEvent?: (e: PullEvent) => void): Promise<ResolvedImage> {
    const image = await this.resolveUncached(name, onEvent);
    this.images.set(name, { image, at: Date.now() });
    return image;
  }

  snapshotSupport(driver: DriverName): SnapshotSupport {
    return this.snapshots.support(driver);
  }

  snapshot(ws: SandboxRef, snapshotId: string, opts: SnapshotOptions): Promise<HostSnapshot> {
    return this.snapshots.take(ws, snapshotId, opts);
  }

  async restoreSnapshot(ws: SandboxRef, snapshotId: string): Promise<{ state: SandboxState }> {
    return { state: (await this.snapshots.restore(ws, snapshotId)).state };
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.images.delete(`snapshot:${snapshotId}`);
    await this.snapshots.remove(snapshotId);
  }

  exportSnapshot(snapshotId: string, name: { workspaceId: string; version: string }, filter: { include: string[]; exclude: string[] }): Promise<{ file: string; bytes: number; sha256: string; entries: number }> {
    return this.snapshots.export(snapshotId, name, filter);
  }

  deleteArchiveFile(file: string): Promise<void> {
    return this.snapshots.removeArchive(file);
  }

  async listSandboxes(): Promise<{ id: string; driver: DriverName; state?: SandboxState }[]> {
    const out: { id: string; driver: DriverName; state?: SandboxState }[] = [];
    for (const [name, d] of Object.entries(this.drivers)) {
      const driver = name as DriverName;
      if (d!.listWithState) for (const s of await d!.listWithState()) out.push({ ...s, driver });
      else for (const id of await d!.list()) out.push({ id, driver });
    }
    return out;
  }

  async removeOrphans(known: { ids: ReadonlySet<string>; slots: ReadonlySet<number> }, listedIds?: string[]): Promise<OrphanSweep> {
    const sweep: OrphanSweep = { sandboxes: [], dirs: [], slots: [], failed: [] };
    const root = path.join(this.opts.dataDir, 'workspaces');
    const listed = (listedIds ?? (await this.listSandboxes()).map((s) => s.id)).filter((id) => !known.ids.has(id));
    const dirs = (await readdir(root).catch(() => [] as string[])).filter((id) => WORKSPACE_DIR_RE.test(id) && !known.ids.has(id));
    for (const id of new Set([...listed, ...dirs])) {
      try {
        // Either driver may hold pieces of it (a sandbox, a disk dir): each removes its own, idempotently.
        for (const d of Object.values(this.drivers)) await d!.removeOrphan?.(id, path.join(root, id));
        (listed.includes(id) ? sweep.sandboxes : sweep.dirs).push(id);
      } catch (err) {
        sweep.failed.push({ what: `workspace ${id}`, error: (err as Error).message });
      }
    }
    for (const index of await this.network.bridgePortSlots()) {
      if (known.slots.has(index)) continue;
      if (index >= slotCapacity(this.opts.network)) {
        sweep.failed.push({ what: `slot ${index}`, error: 'a bridge port outside the slot plan: remove it by hand (ip link del)' });
        continue;
      }
      try {
        await this.network.detach(slotFor(this.opts.network, index));
        sweep.slots.push(index);
      } catch (err) {
        sweep.failed.push({ what: `slot ${index}`, error: (err as Error).message });
      }
    }
    return sweep;
  }

  async close(): Promise<void> {
    this.probeAgent.destroy();
    await this.dns?.close();
  }
}

function driverFailure(err: unknown): ProvisionFailure {
  if (err instanceof ContainerDriverError) {
    const stage = err.stage === 'validate' ? 'host' : err.stage;
    return { stage, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  }
  if (err instanceof MicrovmDriverError) {
    const stage = err.stage === 'validate' ? 'host' : err.stage;
    return { stage, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  }
  return { stage: 'host', message: err instanceof Error ? err.message : String(err) };
}
