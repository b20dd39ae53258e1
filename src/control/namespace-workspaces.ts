/**
 * What the namespace service needs of the workspace service: it decides
 * when a namespace's workspaces stop or go, the workspace service owns
 * doing it. The namespace service is handed a function returning this at
 * construction, because the workspace service is built after it (it takes
 * the namespace service as its admission).
 */
export interface NamespaceWorkspaces {
  idsInNamespace(slug: string, states?: string[]): Promise<string[]>;
  stopSystem(id: string, reason: 'namespace' | 'quota'): Promise<void>;
  deleteSystem(id: string): Promise<void>;
  usageNow(slug: string, excludeId?: string): Promise<{ workspaces: number; totalVcpus: number; totalRamMb: number }>;
}
