/** What a benchmark run ran: the server code's version, and the CPU profiles the server wrote. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../test/support/node-server.ts";

/** HEAD plus a hash of uncommitted changes to the server code (others edit it meanwhile). */
export function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync("git", a, { cwd: repoRoot, encoding: "utf8" });
    const head = git("rev-parse", "--short", "HEAD").trim();
    const diff = git("diff", "HEAD", "--", "functions", "storage", "infra");
    return diff ? `${head}+${createHash("sha256").update(diff).digest("hex").slice(0, 8)}` : head;
  } catch {
    return "unknown";
  }
}

/** The names in `dir` (none when it does not exist). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The .cpuprofile files in `dir` that are not in `before`, largest first: the server writes one
 * per thread (tsx's loader runs in a worker), and the largest is the main thread's.
 */
export function newProfiles(dir: string, before: Set<string>): string[] {
  return listDir(dir)
    .filter((f) => f.endsWith(".cpuprofile") && !before.has(f))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size);
}
