/**
 * `redocly lint` (@redocly/cli, its built-in recommended rules) over an OpenAPI document, as
 * API.md asks the served document to pass: every problem it reports, errors and warnings alike.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./node-server.ts";

export interface LintProblem {
  ruleId: string;
  severity: string;
  message: string;
  location: string;
}

export async function redoclyLint(document: unknown): Promise<LintProblem[]> {
  const dir = mkdtempSync(join(tmpdir(), "reservoir-redocly-"));
  try {
    const file = join(dir, "openapi.json");
    const report = join(dir, "report.json");
    writeFileSync(file, JSON.stringify(document));
    const cli = join(repoRoot, "node_modules", "@redocly", "cli", "bin", "cli.js");
    // Exits 1 when it finds errors; the report says which either way.
    await promisify(execFile)(process.execPath, [cli, "lint", file, "--format", "json", "--extends", "recommended"], {
      cwd: dir,
      env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
      maxBuffer: 64 * 1024 * 1024,
    }).then(
      ({ stdout }) => writeFileSync(report, stdout),
      (error: { stdout?: string }) => writeFileSync(report, error.stdout ?? ""),
    );
    const parsed = JSON.parse(readFileSync(report, "utf8")) as {
      problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
    };
    return parsed.problems.map((p) => ({
      ruleId: p.ruleId,
      severity: p.severity,
      message: p.message,
      location: p.location.map((l) => l.pointer).join(", "),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
