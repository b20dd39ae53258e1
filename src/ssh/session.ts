/**
 * One SSH `session` channel, mapped onto the workspace's guest agent:
 *
 *   pty + shell     → an agent terminal (PTY), bytes over the agent's /ws
 *   pty + exec      → an agent terminal running `sh -c <command>`
 *   shell (no pty)  → exec of the login shell, stdin/stdout/stderr relayed
 *   exec (no pty)   → exec of `sh -c <command>`; its exit code is the
 *                     channel's exit-status (what `ssh host cmd; echo $?` sees)
 *   subsystem sftp  → exec of the in-workspace SFTP server (guest/sftp-server.ts)
 *                     on the agent's own Node; SFTP bytes relayed unchanged,
 *                     which also serves `scp` (OpenSSH 9 scp speaks SFTP)
 *
 * `window-change` resizes the terminal; `signal` signals the exec's
 * process group; closing the channel kills what still runs.
 */
import type { Connection, ServerChannel, Session } from 'ssh2';
import type { AgentClient, ExecSession } from './agent-client.ts';

export interface SessionDeps {
  agent: () => Promise<AgentClient>;
  /** argv that runs the bundled SFTP server inside the workspace. */
  sftpCommand: () => Promise<{ cmd: string[]; env: Record<string, string> }>;
  onError(err: Error, what: string): void;
}

interface PtyInfo {
  term: string;
  cols: number;
  rows: number;
}

const SHELL = ['/bin/sh', '-c', 'if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function handleSession(_conn: Connection, session: Session, deps: SessionDeps): void {
  let pty: PtyInfo | null = null;
  const env: Record<string, string> = {};
  let exec: ExecSession | null = null;
  let terminal: { client: AgentClient; id: number } | null = null;

  session.on('pty', (accept, _reject, info) => {
    pty = { term: info.term || 'xterm-256color', cols: info.cols || 80, rows: info.rows || 24 };
    accept?.();
  });
  session.on('env', (accept, reject, info) => {
    // Like sshd's AcceptEnv: only sane names, and never the agent's own settings.
    if (ENV_NAME.test(info.key) && !info.key.startsWith('HEARTH_')) { env[info.key] = info.val; accept?.(); } else reject?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (pty) { pty.cols = info.cols; pty.rows = info.rows; }
    if (terminal) terminal.client.socket.resize(terminal.id, info.cols, info.rows);
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => {
    if (exec) void exec.kill(info.name);
    accept?.();
  });

  const fail = (stream: ServerChannel, err: Error) => {
    stream.stderr.write(`hearth: ${err.message}\r\n`);
    stream.exit(255);
    stream.end();
  };

  const runTerminal = async (stream: ServerChannel, cmd: string[] | undefined, p: PtyInfo) => {
    const client = await deps.agent();
    await client.socket.open();
    const id = await client.createTerminal({ ...(cmd ? { cmd } : {}), cols: p.cols, rows: p.rows, env: { ...env, TERM: p.term } });
    terminal = { client, id };
    let done = false;
    client.socket.listen(id, {
      data: (d) => { if (!done) stream.write(d); },
      exit: (code) => {
        if (done) return;
        done = true;
        void client.closeTerminal(id);
        stream.exit(code);
        stream.end();
      },
    });
    stream.on('data', (d: Buffer) => client.socket.input(id, d));
    stream.on('close', () => {
      if (done) return;
      done = true;
      client.socket.unlisten(id);
      void client.closeTerminal(id);
    });
  };

  const runExec = async (stream: ServerChannel, cmd: string[], extraEnv: Record<string, string> = {}) => {
    const client = await deps.agent();
    let done = false;
    const e = client.exec({ cmd, env: { ...env, ...extraEnv } }, {
      stdout: (d) => stream.write(d),
      stderr: (d) => stream.stderr.write(d),
      exit: (code, signal) => {
        if (done) return;
        done = true;
        if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
        else stream.exit(code);
        stream.end();
      },
      error: (err) => {
        if (done) return;
        done = true;
        fail(stream, err);
      },
    });
    exec = e;
    stream.on('data', (d: Buffer) => e.write(d));
    stream.on('end', () => e.end());
    stream.on('close', () => {
      e.close();
      if (!done) { done = true; void e.kill('KILL'); }
    });
  };

  const start = (stream: ServerChannel, what: string, run: () => Promise<void>) => {
    run().catch((err: Error) => {
      deps.onError(err, what);
      fail(stream, err);
    });
  };

  session.on('shell', (accept) => {
    const stream = accept();
    const p = pty;
    if (p) start(stream, 'shell', () => runTerminal(stream, undefined, p));
    else start(stream, 'shell', () => runExec(stream, SHELL));
  });

  session.on('exec', (accept, _reject, info) => {
    const stream = accept();
    const cmd = ['/bin/sh', '-c', info.command];
    const p = pty;
    if (p) start(stream, 'exec', () => runTerminal(stream, cmd, p));
    else start(stream, 'exec', () => runExec(stream, cmd));
  });

  session.on('subsystem', (accept, reject, info) => {
    if (info.name !== 'sftp') { reject?.(); return; }
    const stream = accept();
    start(stream, 'sftp', async () => {
      const { cmd, env: sftpEnv } = await deps.sftpCommand();
      await runExec(stream, cmd, sftpEnv);
    });
  });
}
