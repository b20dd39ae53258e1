/**
 * Progress for long setup steps. Without a TTY: plain timestamped lines
 * (step start, tool output, step end). With a TTY: the same step lines, and
 * while a step runs, one live status line on that TTY (spinner, elapsed
 * time, the tool's latest output) that is cleared before every other line.
 */

export interface StepOutcome {
  /** Shown after the step's name: `CACHED`, `built in 12.3s`, … */
  summary: string;
}

export interface Reporter {
  /** A status line (always kept). */
  info(line: string): void;
  /** A tool's progress line: streamed as-is without a TTY, shown in the live line with one. */
  tool(line: string): void;
  step<T>(name: string, fn: () => Promise<T>, summarize: (result: T, seconds: number) => string): Promise<T>;
  close(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function timestamp(d = new Date()): string {
  return d.toTimeString().slice(0, 8);
}

export function formatSeconds(s: number): string {
  return s < 10 ? `${s.toFixed(1)}s` : s < 120 ? `${Math.round(s)}s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

export function createReporter(opts: { log: (line: string) => void; tty?: NodeJS.WriteStream }): Reporter {
  const tty = opts.tty?.isTTY ? opts.tty : undefined;
  let current: { name: string; started: number; last: string } | undefined;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;

  const clear = () => {
    if (tty) tty.write('\r\x1b[2K');
  };
  const draw = () => {
    if (!tty || !current) return;
    const elapsed = formatSeconds((Date.now() - current.started) / 1000);
    const head = `${FRAMES[frame++ % FRAMES.length]} ${current.name} ${elapsed}`;
    const room = (tty.columns || 80) - head.length - 3;
    const tail = current.last && room > 10 ? `  ${current.last.slice(0, room)}` : '';
    tty.write(`\r\x1b[2K${head}${tail}`);
  };
  const emit = (line: string) => {
    clear();
    opts.log(`${timestamp()} ${line}`);
    draw();
  };

  return {
    info: emit,
    tool(line) {
      if (tty && current) {
        current.last = line;
        draw();
      } else emit(`  ${line}`);
    },
    async step(name, fn, summarize) {
      const started = Date.now();
      current = { name, started, last: '' };
      emit(`▸ ${name}`);
      if (tty) {
        timer = setInterval(draw, 100);
        timer.unref();
      }
      try {
        const result = await fn();
        const seconds = (Date.now() - started) / 1000;
        stop();
        emit(`✓ ${name}: ${summarize(result, seconds)}`);
        return result;
      } catch (e) {
        stop();
        emit(`✗ ${name}: FAILED after ${formatSeconds((Date.now() - started) / 1000)}: ${(e as Error).message}`);
        throw e;
      }
    },
    close: () => stop(),
  };

  function stop() {
    if (timer) clearInterval(timer);
    timer = undefined;
    current = undefined;
    clear();
  }
}
