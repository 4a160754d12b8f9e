/**
 * The `reservoir` command line. Its libraries (commander for arguments, cli-progress for the
 * progress bar, cli-table3 for tables) are this entry's alone: the SDK it is built on
 * (client/src outside cli/) imports none of them, and biome enforces it.
 */
import { Command, CommanderError } from "commander";
import { registerAdmin } from "./commands/admin.ts";
import { registerBench } from "./commands/bench.ts";
import { registerGroups } from "./commands/groups.ts";
import { registerLogin } from "./commands/login.ts";
import { registerProduce } from "./commands/produce.ts";
import { registerSubscriptions } from "./commands/subscriptions.ts";
import { registerTail } from "./commands/tail.ts";
import { registerTopics } from "./commands/topics.ts";
import { registerUsage } from "./commands/usage.ts";
import { Context } from "./context.ts";
import { describeFailure, EXIT } from "./errors.ts";

const program = new Command("reservoir")
  .description("Reservoir from the command line: topics, produce, tail, consume, dead letters, usage, bench.")
  .version("0.1.0")
  .option("--url <url>", "the service (default: $RESERVOIR_URL, the login's, or http://localhost:8787)")
  .option("--api-key <key>", "a tenant API key (default: $RESERVOIR_API_KEY or the login's)")
  .showHelpAfterError("(reservoir --help, or reservoir <command> --help, for usage)")
  .exitOverride();

const ctx = new Context(program);
registerLogin(program, ctx);
registerAdmin(program, ctx);
registerTopics(program, ctx);
registerProduce(program, ctx);
registerTail(program, ctx);
registerGroups(program, ctx);
registerSubscriptions(program, ctx);
registerUsage(program, ctx);
registerBench(program, ctx);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version end with code 0; a bad flag or a missing argument is a usage error
    // (commander has printed it already).
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    let url: string | undefined;
    try {
      url = ctx.connection.url;
    } catch {
      // The connection itself was the problem: the message says so.
    }
    const { message, code } = describeFailure(error, url);
    process.stderr.write(message + "\n");
    process.exitCode = code;
  }
}
