/**
 * The parts of the agent protocol both sides name: where the guest agent
 * listens and the prefixes of its internal API. The agent (src/agent) serves
 * them; hearthd (the host layer, the control plane, the SSH gateway) calls
 * them. One definition, so the two sides cannot drift apart.
 */

/** The guest agent's port on the workspace's own address: only the host may reach it. */
export const AGENT_PORT = 9990;

/** Where hearthd reaches one workspace's agent: its address on the workspace network and AGENT_PORT. */
export interface AgentEndpoint {
  ip: string;
  port: number;
}

/** The agent's internal workload API (hearthd serves /workspace/:id/workloads… from it). */
export const WORKLOADS_PREFIX = '/_hearth/workloads';
/** The agent's log API (boot and workload logs, §18). */
export const LOGS_PREFIX = '/_hearth/logs';
/** The agent's guest metrics (§14). */
export const METRICS_PREFIX = '/_hearth/metrics';

/**
 * The first agent generation (src/agent/protocol.ts, reported on /health) that
 * serves the three prefixes above: a re-adopted workspace may run an older agent.
 */
export const WORKLOADS_GENERATION = 2;
