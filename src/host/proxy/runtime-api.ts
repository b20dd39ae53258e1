/**
 * HAProxy's runtime API (the "stats socket" at level admin) over its Unix
 * socket: one connection per call, the non-interactive mode where HAProxy
 * answers and closes. Several commands may share a call (`a;b;c`, one
 * round trip); a payload command (`set ssl cert <path> <<`) goes alone.
 * Calls are serialized so answers never interleave.
 */
import net from 'node:net';

export class RuntimeApiError extends Error {
  constructor(readonly command: string, readonly answer: string) {
    super(`haproxy refused "${command.split('\n')[0]!.slice(0, 120)}": ${answer.trim().slice(0, 300)}`);
    this.name = 'RuntimeApiError';
  }
}

/** Answers that mean a command failed (HAProxy answers failures in prose, not codes). */
const FAILED = /^(Unknown command|Can't |Cannot |No such |Unable |Invalid |unknown |'[^']*' |Require |Permission denied|.*not found|.*failed|.*error)/im;

export class RuntimeApi {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly socketPath: string, private readonly timeoutMs = 5000) {}

  /** Send raw text (one or more `;`-joined commands, or one payload command); resolves with the answer. */
  raw(text: string): Promise<string> {
    const run = () => new Promise<string>((resolve, reject) => {
      const s = net.connect(this.socketPath);
      let out = '';
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`haproxy runtime API: no answer within ${this.timeoutMs} ms`)); }, this.timeoutMs);
      s.setEncoding('utf8');
      s.on('data', (d: string) => { out += d; });
      s.on('error', (err) => { clearTimeout(timer); reject(err); });
      s.on('close', () => { clearTimeout(timer); resolve(out); });
      s.end(text.endsWith('\n') ? text : `${text}\n`);
    });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Run commands in one round trip; throws if HAProxy's answer says one failed. */
  async run(...commands: string[]): Promise<string> {
    if (commands.length === 0) return '';
    const text = commands.join(';');
    const answer = await this.raw(text);
    if (FAILED.test(answer)) throw new RuntimeApiError(text, answer);
    return answer;
  }

  /** `set ssl cert` and friends: a command followed by a multi-line payload. */
  async payload(command: string, body: string): Promise<string> {
    const answer = await this.raw(`${command} <<\n${body.trim()}\n\n`);
    if (FAILED.test(answer) && !/Transaction (created|updated)|Success|Inserting/i.test(answer)) throw new RuntimeApiError(command, answer);
    return answer;
  }

  /** True when something answers on the socket. */
  async alive(): Promise<boolean> {
    try {
      return (await this.raw('show info')).includes('Name: HAProxy');
    } catch {
      return false;
    }
  }
}
