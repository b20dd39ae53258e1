/** `--listen HOST:PORT` (port 0 = pick a free one). */
export interface ListenArg {
  host: string;
  port: number;
}

export class ArgError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
    this.name = 'ArgError';
  }
}

export function parseListen(flag: string, value: string): ListenArg {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ArgError(`${flag} ${JSON.stringify(value)} is not HOST:PORT`, `example: ${flag} 127.0.0.1:7070 (port 0 picks a free one)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}
