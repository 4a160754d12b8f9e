// Headless Chromium for page tests: Debian's `chromium` (installed by .ci/run when missing),
// driven by playwright-core over CDP, with a fresh profile per launch and everything that
// would reach the network on its own (updates, sync, safe browsing lists, QUIC) switched off.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { repoRoot } from "./node-server.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Writes a full-page PNG to test-artifacts/<folder>/<name>.png (kept by CI as an artifact). */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchChromium(artifacts: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "reservoir-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const dir = join(repoRoot, "test-artifacts", artifacts);
  mkdirSync(dir, { recursive: true });
  return {
    context,
    page,
    async screenshot(name) {
      const path = join(dir, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
