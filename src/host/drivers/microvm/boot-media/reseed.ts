/**
 * The guest's reseed helper: a tiny static program on the agent disk that
 * the launcher runs at every identity. Every VM of one (image, shape) is
 * restored from the same memory snapshot, so its kernel's CRNG starts in
 * the same state, and Debian's 6.1 cloud kernel has no VM generation ID to
 * notice the clone. Writing to /dev/urandom only mixes bytes into the input
 * pool (uncredited, and the CRNG keeps its key until its next scheduled
 * reseed); the two ioctls below credit the host's fresh seed and force the
 * reseed at once. Node has no ioctl, so this is C, built here with Debian's
 * gcc and cached by the hash of its source.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../../images/exec.ts';
import { ImageBuildError } from '../../../images/errors.ts';
import { sha256Hex } from '../../../images/hash.ts';
import { shortKey } from '../../../images/paths.ts';
import { buildFileOnce } from './disks.ts';
import { vmPaths } from './paths.ts';

/**
 * Reads the seed on stdin (32 to 256 bytes: fewer is refused, it would
 * credit too little), credits all its bits (RNDADDENTROPY, which needs
 * CAP_SYS_ADMIN: only the launcher, root in the guest, runs it) and reseeds
 * the CRNG (RNDRESEEDCRNG). Exit codes name the step that failed
 * (RESEED_EXIT_REASONS in src/core/vm-identity.ts).
 */
export const RESEED_SOURCE = `#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct seed { int entropy_count; int buf_size; unsigned char buf[256]; };

int main(void) {
  struct seed s;
  ssize_t n = 0, r;
  while (n < (ssize_t)sizeof s.buf && (r = read(0, s.buf + n, sizeof s.buf - n)) > 0) n += r;
  if (n < 32) return 2;
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 3;
  s.entropy_count = (int)n * 8;
  s.buf_size = (int)n;
  int added = ioctl(fd, RNDADDENTROPY, &s);
  explicit_bzero(&s, sizeof s);
  if (added != 0) return 4;
  if (ioctl(fd, RNDRESEEDCRNG) != 0) return 5;
  return 0;
}
`;

/** Build (once per source) the static helper; returns its path. */
export async function ensureReseedHelper(opts: { artifactsDir?: string; log?: (l: string) => void } = {}): Promise<string> {
  const paths = vmPaths(opts.artifactsDir);
  const file = path.join(paths.agent, `reseed-${shortKey(sha256Hex(RESEED_SOURCE))}`);
  const cached = await buildFileOnce(file, paths.tmp, async (tmp) => {
    const src = `${tmp}.c`;
    await fs.writeFile(src, RESEED_SOURCE);
    try {
      await run('gcc', ['-static', '-Os', '-s', '-Wall', '-Werror', '-o', tmp, src]);
    } catch (e) {
      throw new ImageBuildError('microVM reseed helper', `gcc could not build a static program: ${(e as Error).message}`, 'install gcc and libc6-dev (`hearth setup` does)');
    } finally {
      await fs.rm(src, { force: true });
    }
    await fs.chmod(tmp, 0o755);
  });
  opts.log?.(`reseed helper ${path.basename(file)}: ${cached ? 'CACHED' : 'built'}`);
  return file;
}
