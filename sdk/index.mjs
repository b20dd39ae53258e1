// hearth/sdk — the official `oblien` SDK, bound to a Hearth server.
//
// `client.workspaces.runtime(id)` in oblien@2.4.0 builds `new Runtime({ token })`
// without a base URL, so it always targets Oblien's cloud gateway. `connect()`
// returns a normal `Oblien` client whose `workspaces.runtime(id)` (and the
// handle form `client.workspace(id).runtime()`) talk to Hearth's data plane.
// The gateway URL comes from Hearth's runtime-api-access answers (`base_url`)
// unless `runtimeUrl` is given.
import { Oblien, Runtime } from 'oblien';

const TOKEN_TTL_MS = 55 * 60 * 1000;

export function bindRuntime(client, runtimeUrl) {
  const ws = client.workspaces;
  const cache = new Map();
  ws.runtime = async (workspaceId, options) => {
    const hit = cache.get(workspaceId);
    if (!options?.force && hit && Date.now() - hit.at < TOKEN_TTL_MS) {
      return options?.target ? hit.rt.forTarget(options.target) : hit.rt;
    }
    const status = await ws.apiAccess.status(workspaceId);
    const res = status.enabled ? await ws.apiAccess.getToken(workspaceId) : await ws.apiAccess.enable(workspaceId);
    if (!res?.token) throw new Error(`Failed to obtain a runtime token for workspace ${workspaceId}`);
    const baseUrl = runtimeUrl ?? res.base_url ?? status.base_url;
    if (!baseUrl) throw new Error('Hearth did not report its data-plane URL: pass runtimeUrl to connect()');
    const rt = new Runtime({ token: res.token, baseUrl });
    cache.set(workspaceId, { rt, at: Date.now() });
    return options?.target ? rt.forTarget(options.target) : rt;
  };
  ws.invalidateRuntime = (id) => cache.delete(id);
  ws.invalidateAllRuntimes = () => cache.clear();
  return client;
}

export function connect({ runtimeUrl, ...options }) {
  return bindRuntime(new Oblien(options), runtimeUrl);
}

export { Oblien, Runtime };
