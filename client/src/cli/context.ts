/** What every command gets: the resolved endpoint and keys, and clients built from them. */
import type { Command } from "commander";
import { Reservoir } from "../client.ts";
import { type Connection, resolveConnection } from "./config.ts";
import { UsageError } from "./errors.ts";

export interface GlobalFlags {
  url?: string;
  apiKey?: string;
}

const USER_AGENT = { "user-agent": "reservoir-cli/0.1" };

export class Context {
  private resolved: Connection | undefined;
  constructor(private readonly program: Command) {}

  get connection(): Connection {
    this.resolved ??= resolveConnection(this.program.opts<GlobalFlags>());
    return this.resolved;
  }

  /** A client with the tenant key; a usage error if there is none. */
  client(): Reservoir {
    const { url, apiKey } = this.connection;
    if (!apiKey) throw new UsageError("no API key: set RESERVOIR_API_KEY, pass --api-key, or run `reservoir login`");
    return new Reservoir({ url, apiKey, headers: USER_AGENT });
  }

  /** A client with the operator token. */
  operator(): Reservoir {
    const { url, operatorToken } = this.connection;
    if (!operatorToken) {
      throw new UsageError(
        "no operator token: set RESERVOIR_ADMIN_TOKEN, or run `reservoir login --operator` (a local server's is read from .reservoir/operator-token)",
      );
    }
    return new Reservoir({ url, apiKey: operatorToken, headers: USER_AGENT });
  }
}
