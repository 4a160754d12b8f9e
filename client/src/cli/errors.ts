/**
 * How the CLI ends. Exit codes: 0 done; 1 the service refused or failed (its problem `code` is
 * printed); 2 bad usage or input (a flag, a file, a line of ndjson, no endpoint or key);
 * 3 no answer from the service (not running, wrong URL).
 */
import { ReservoirError } from "../errors.ts";

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

/** A mistake in what the user gave: printed as is, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The message and exit code for an error that ended a command. */
export function describeFailure(error: unknown, url: string | undefined): { message: string; code: number } {
  if (error instanceof UsageError) return { message: `error: ${error.message}`, code: EXIT.usage };
  if (error instanceof ReservoirError) {
    if (error.status === 0) {
      return { message: `error: no answer from ${url ?? "the service"} (${error.detail}); is the server running?`, code: EXIT.unreachable };
    }
    return { message: `error: ${error.code} (${error.status}): ${error.detail}`, code: EXIT.refused };
  }
  return { message: `error: ${(error as Error)?.stack ?? String(error)}`, code: EXIT.refused };
}
