/**
 * `hearth` — one verb per file in src/cli/commands/. Results go to stdout,
 * progress and diagnostics to stderr.
 */
import { ArgError } from './args/listen.ts';

const COMMANDS: Record<string, { describe: string; load: () => Promise<(argv: string[]) => Promise<number>> }> = {
  serve: { describe: 'run hearthd (control plane, gateway)', load: async () => (await import('./commands/serve.ts')).serveCommand },
  setup: { describe: 'prepare this host: packages, agent drive, images', load: async () => (await import('./commands/setup.ts')).setupCommand },
  ca: { describe: 'print the Hearth CA certificate, or --install it into the system trust store', load: async () => (await import('./commands/ca.ts')).caCommand },
  doctor: { describe: 'which isolation drivers this host can run, and why not', load: async () => (await import('./commands/doctor.ts')).doctorCommand },
  'console-link': { describe: 'print a one-time sign-in link to the web console', load: async () => (await import('./commands/console-link.ts')).consoleLinkCommand },
  hosts: { describe: 'list the store\'s hosts with health and load; drain or undrain one', load: async () => (await import('./commands/hosts.ts')).hostsCommand },
  env: { describe: 'print the exports that point the oblien CLI, MCP and SDK here: eval "$(hearth env)"', load: async () => (await import('./commands/env.ts')).envCommand },
  images: { describe: 'list, pull, import (docker save / OCI archives) and gc images', load: async () => (await import('./commands/images.ts')).imagesCommand },
};

function help(): string {
  const lines = ['usage: hearth <command> [flags]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.describe}`);
  lines.push('', 'examples:', '  hearth setup', '  hearth serve --data-dir /var/lib/hearth/data --listen 127.0.0.1:7070', '  hearth doctor');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb || verb === 'help' || verb === '--help' || verb === '-h') {
    process.stdout.write(help() + '\n');
    return verb ? 0 : 2;
  }
  const cmd = COMMANDS[verb];
  if (!cmd) {
    process.stderr.write(`hearth: unknown command ${JSON.stringify(verb)}\n\n${help()}\n`);
    return 2;
  }
  try {
    return await (await cmd.load())(rest);
  } catch (err) {
    if (err instanceof ArgError) {
      process.stderr.write(`hearth ${verb}: ${err.message}\n  ${err.hint}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`hearth: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
