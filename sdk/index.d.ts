import { Oblien, Runtime } from 'oblien';
export interface ConnectOptions {
  clientId?: string;
  clientSecret?: string;
  token?: string;
  /** Hearth's control-plane URL (endpoints.json `api`). */
  baseUrl: string;
  /** Hearth's data-plane URL (endpoints.json `runtime`); discovered from the server when omitted. */
  runtimeUrl?: string;
}
export declare function connect(options: ConnectOptions): Oblien;
export declare function bindRuntime(client: Oblien, runtimeUrl?: string): Oblien;
export { Oblien, Runtime };
