/** `reservoir login`: checks a key against the service and keeps it, with the URL, in the config file (0600). */
import type { Command } from "commander";
import { Reservoir } from "../../client.ts";
import { configPath, readConfig, writeConfig } from "../config.ts";
import type { Context, GlobalFlags } from "../context.ts";
import { UsageError } from "../errors.ts";
import { note } from "../output.ts";

/** The first line of stdin, when it is piped (`echo $KEY | reservoir login`). */
async function keyFromStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text.split("\n")[0]!.trim() || undefined;
}

export function registerLogin(program: Command, ctx: Context): void {
  program
    .command("login")
    .description("check a tenant key (or with --operator, the operator token) and save it with the URL in the config file")
    .option("--operator", "the key is the operator token (for `tenants` and `keys`)")
    .option("--no-verify", "save without asking the service")
    .addHelpText(
      "after",
      "\nThe key comes from --api-key, $RESERVOIR_API_KEY, or stdin. The file: $XDG_CONFIG_HOME/reservoir/config.json (mode 0600).",
    )
    .action(async (opts: { operator?: boolean; verify: boolean }) => {
      const flags = program.opts<GlobalFlags>();
      const url = ctx.connection.url;
      const key = flags.apiKey ?? process.env.RESERVOIR_API_KEY ?? (await keyFromStdin());
      if (!key) throw new UsageError("no key to save: pass --api-key, set RESERVOIR_API_KEY, or pipe it on stdin");
      if (opts.verify) {
        const client = new Reservoir({ url, apiKey: key });
        if (opts.operator) await client.admin.storage();
        else await client.topics.list();
      }
      const path = configPath();
      const saved = readConfig(path);
      writeConfig({ ...saved, url, ...(opts.operator ? { operatorToken: key } : { apiKey: key }) }, path);
      note(`logged in to ${url}${opts.operator ? " as the operator" : ""}; saved in ${path}`);
    });
}
