/**
 * Debian's Chromium driven by playwright-core for the console's browser
 * tests: one browser per test file, pages that record every uncaught page
 * error and console error (a test fails on any), and a screenshot of each
 * open page in the test output directory when a test fails
 * (HEARTH_TEST_OUTPUT, default .data/test-output/browser).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';
export const OUTPUT_DIR = process.env.HEARTH_TEST_OUTPUT
  ? path.join(process.env.HEARTH_TEST_OUTPUT, 'browser')
  : path.resolve(import.meta.dirname, '..', '..', '.data', 'test-output', 'browser');

export async function chromiumMissing(): Promise<string | false> {
  return fs.access(CHROMIUM).then(() => false as const, () => `needs Chromium at ${CHROMIUM} (Debian package chromium)`);
}

export interface Watched {
  page: Page;
  /** Uncaught page errors and console errors seen so far. */
  errors: string[];
  /** Console errors matching this are expected (a refused sign-in logs its 401). */
  allow: RegExp[];
}

export class Browsing {
  private constructor(readonly browser: Browser, private readonly watched: Watched[] = []) {}

  static async launch(): Promise<Browsing> {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    return new Browsing(browser);
  }

  async context(viewport = { width: 1400, height: 900 }): Promise<BrowserContext> {
    const ctx = await this.browser.newContext({ viewport });
    ctx.on('page', (p) => this.watch(p));
    return ctx;
  }

  /** A new page in `ctx` whose errors are recorded. */
  async page(ctx: BrowserContext): Promise<Watched> {
    const page = await ctx.newPage();
    return this.watched.find((w) => w.page === page) ?? this.watch(page);
  }

  private watch(page: Page): Watched {
    const existing = this.watched.find((w) => w.page === page);
    if (existing) return existing;
    const w: Watched = { page, errors: [], allow: [] };
    page.on('pageerror', (err) => w.errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = msg.text();
      if (w.allow.some((r) => r.test(text))) return;
      w.errors.push(`console.error: ${text} (${msg.location().url})`);
    });
    this.watched.push(w);
    return w;
  }

  /** Every error any watched page has seen. */
  errors(): string[] {
    return this.watched.flatMap((w) => w.errors.map((e) => `${w.page.url()}: ${e}`));
  }

  /** Run a test body; on failure, screenshot every open page into OUTPUT_DIR first. */
  async run(name: string, body: () => Promise<void>): Promise<void> {
    const before = this.errors().length;
    try {
      await body();
      const errs = this.errors().slice(before);
      if (errs.length) throw new Error(`uncaught page errors:\n  ${errs.join('\n  ')}`);
    } catch (err) {
      await fs.mkdir(OUTPUT_DIR, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      let i = 0;
      for (const w of this.watched) {
        if (w.page.isClosed()) continue;
        const file = path.join(OUTPUT_DIR, `${slug}-${i++}.png`);
        await w.page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
        process.stderr.write(`screenshot: ${file} (${w.page.url()})\n`);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.browser.close();
  }
}
