/**
 * Hearth as seen from inside a workspace: the control plane and the data
 * plane published on the workspace network under stable names, so an agent
 * living in a permanent workspace can drive more workspaces with the SDK.
 *
 * Both names resolve (through Hearth's DNS forwarder) to the bridge's
 * gateway address, port 80; the host redirects that port to hearthd's one
 * workspace-facing listener, which hands a request to the API or to the
 * runtime gateway by its Host header. They are reachable under the same
 * rules as the internet: open egress reaches them, an air-gapped workspace
 * only if its egress list names them (or the gateway address). Every
 * request is still authenticated and rate-limited like any other.
 */

export const INTERNAL_API_NAME = 'api.hearth.internal';
export const INTERNAL_RUNTIME_NAME = 'runtime.hearth.internal';
/** The port workspaces use; the host redirects it to hearthd's listener. */
export const INTERNAL_PORT = 80;
/** TTL of the forwarder's own answers for the two names (the gateway address never changes while hearthd runs). */
export const INTERNAL_NAME_TTL_S = 300;

export const INTERNAL_NAMES: readonly string[] = [INTERNAL_API_NAME, INTERNAL_RUNTIME_NAME];

/** The URLs a workspace uses (endpoints.json: api_internal, runtime_internal). */
export function internalUrls(): { api_internal: string; runtime_internal: string } {
  return { api_internal: `http://${INTERNAL_API_NAME}`, runtime_internal: `http://${INTERNAL_RUNTIME_NAME}` };
}

/**
 * Which plane a request to the workspace-facing listener is for, from its
 * Host header: the runtime name goes to the data plane, anything else
 * (the API name, the bare gateway address) to the control plane.
 */
export function internalPlaneOf(hostHeader: string | undefined): 'api' | 'runtime' {
  const name = (hostHeader ?? '').trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  return name === INTERNAL_RUNTIME_NAME ? 'runtime' : 'api';
}
