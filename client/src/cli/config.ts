/**
 * Where the CLI finds its endpoint and keys, first match wins:
 * 1. flags (`--url`, `--api-key`);
 * 2. the environment (`RESERVOIR_URL`, `RESERVOIR_API_KEY`; `RESERVOIR_ADMIN_TOKEN` for admin);
 * 3. the config file `reservoir login` writes: `$XDG_CONFIG_HOME/reservoir/config.json`
 *    (default `~/.config/reservoir/config.json`; `%APPDATA%\reservoir\config.json` on Windows),
 *    mode 0600 because it holds a key;
 * 4. for the URL, `http://localhost:8787`; for the operator token, the `operator-token` file a
 *    local server keeps in its data dir (`$RESERVOIR_DATA_DIR`, default `./.reservoir`).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UsageError } from "./errors.ts";

export interface SavedConfig {
  url?: string;
  apiKey?: string;
  operatorToken?: string;
}

export const DEFAULT_URL = "http://localhost:8787";

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "reservoir", "config.json");
  if (process.platform === "win32" && env.APPDATA) return join(env.APPDATA, "reservoir", "config.json");
  return join(homedir(), ".config", "reservoir", "config.json");
}

export function readConfig(path = configPath()): SavedConfig {
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readFileSync(path, "utf8")) as SavedConfig;
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message} (run \`reservoir login\` again)`);
  }
}

export function writeConfig(config: SavedConfig, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  // writeFileSync's mode applies only to a new file: an existing one is narrowed too.
  chmodSync(path, 0o600);
}

export interface Connection {
  url: string;
  apiKey: string | undefined;
  operatorToken: string | undefined;
}

export function resolveConnection(flags: { url?: string; apiKey?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const saved = readConfig(configPath(env));
  const url = flags.url ?? env.RESERVOIR_URL ?? saved.url ?? DEFAULT_URL;
  try {
    new URL(url);
  } catch {
    throw new UsageError(`not a URL: ${url}`);
  }
  return {
    url,
    apiKey: flags.apiKey ?? env.RESERVOIR_API_KEY ?? saved.apiKey,
    operatorToken: env.RESERVOIR_ADMIN_TOKEN ?? saved.operatorToken ?? localOperatorToken(env),
  };
}

/** The token a local server generated and kept in its data dir, if this is where it runs. */
function localOperatorToken(env: NodeJS.ProcessEnv): string | undefined {
  const file = join(env.RESERVOIR_DATA_DIR ?? ".reservoir", "operator-token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() || undefined : undefined;
}
