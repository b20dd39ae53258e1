/**
 * The body of network.update (PATCH /workspace/:id/network), checked whole
 * before anything changes: the firewall fields go to the workspace's
 * config, `public_access` to the public-access service, and the modes
 * Hearth does not offer answer `not_supported` with what to do instead.
 */
import { ValidationFailed } from '../../core/errors.ts';
import { HttpError } from '../errors.ts';
import type { Json } from '../parse.ts';

const CONFIG_FIELDS = ['allow_internet', 'ingress', 'egress', 'ingress_ports'] as const;
const KNOWN = new Set<string>([...CONFIG_FIELDS, 'public_access', 'outbound_mode', 'custom_proxy', 'private_link_ids']);

export interface NetworkUpdate {
  config: Json;
  /** Switch every exposed port on or off at once (undefined: unchanged). */
  publicAccess: boolean | undefined;
}

export function parseNetworkUpdate(b: Json): NetworkUpdate {
  for (const k of Object.keys(b)) {
    if (!KNOWN.has(k)) throw new ValidationFailed(k, `unknown network field ${JSON.stringify(k)}: use ${[...KNOWN].join(', ')}`);
  }
  const config: Json = {};
  for (const k of CONFIG_FIELDS) if (b[k] !== undefined) config[k] = b[k];
  if (b.public_access !== undefined && typeof b.public_access !== 'boolean') throw new ValidationFailed('public_access', 'public_access must be true or false');
  if (b.outbound_mode !== undefined && b.outbound_mode !== null) {
    if (b.outbound_mode === 'custom' || b.custom_proxy !== undefined) {
      throw new HttpError('not_supported', 'a custom outbound proxy (outbound_mode "custom", BYOP) is not offered by this server: egress leaves through the host, optionally from an outbound IP of this host',
        { field: b.outbound_mode === 'custom' ? 'outbound_mode' : 'custom_proxy' }, 'pin the source address with network.applyOutboundIp(id, { ip }), or set HTTP(S)_PROXY inside the workspace and limit egress to the proxy with network.update(id, { egress: [proxyHost] })');
    }
    // 'managed' is what every workspace here is: nothing to change.
    if (b.outbound_mode !== 'managed') throw new ValidationFailed('outbound_mode', 'outbound_mode must be "managed" or "custom"');
  } else if (b.custom_proxy !== undefined && b.custom_proxy !== null) {
    throw new HttpError('not_supported', 'a custom outbound proxy (custom_proxy) is not offered by this server', { field: 'custom_proxy' }, 'pin the source address with network.applyOutboundIp(id, { ip }) instead');
  }
  if (b.private_link_ids !== undefined && b.private_link_ids !== null) {
    if (!Array.isArray(b.private_link_ids)) throw new ValidationFailed('private_link_ids', 'private_link_ids must be a list of workspace ids');
    if (b.private_link_ids.length > 0) {
      throw new HttpError('not_supported', 'private links are not a separate feature here: workspaces reach each other by name through their network lists', { field: 'private_link_ids' },
        'allow the peer in egress and this workspace in the peer\'s ingress: network.update(id, { egress: ["<peer id or slug>"] })');
    }
  }
  return { config, publicAccess: b.public_access as boolean | undefined };
}
