/** Operator commands: `tenants create|get`, `keys create|revoke` (the operator token: see config.ts). */
import type { Command } from "commander";
import { configPath, readConfig, writeConfig } from "../config.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { note, printJson, printTable, time } from "../output.ts";

const SCOPES = ["produce", "consume", "manage"] as const;
type Scope = (typeof SCOPES)[number];

function scopes(raw: string): Scope[] {
  const list = raw.split(",").map((s) => s.trim());
  for (const s of list) if (!SCOPES.includes(s as Scope)) throw new UsageError(`unknown scope "${s}" (scopes: ${SCOPES.join(", ")})`);
  return list as Scope[];
}

export function registerAdmin(program: Command, ctx: Context): void {
  const tenants = program.command("tenants").description("tenants (operator token)");
  tenants
    .command("create <name>")
    .description("create a tenant and print its first API key")
    .option("--login", "also save the new key (and the URL) as this CLI's login")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { login?: boolean; json?: boolean }) => {
      const created = await ctx.operator().admin.tenants.create({ name });
      if (opts.json) printJson(created);
      else printTable(["tenantId", "keyId", "apiKey"], [[created.tenantId, created.keyId, created.apiKey]]);
      if (opts.login) {
        const path = configPath();
        writeConfig({ ...readConfig(path), url: ctx.connection.url, apiKey: created.apiKey }, path);
        note(`logged in as tenant ${name}; saved in ${path}`);
      }
    });
  tenants
    .command("get <tenantId>")
    .description("a tenant and its quotas")
    .action(async (tenantId: string) => {
      const t = await ctx.operator().admin.tenants.get(tenantId);
      printTable(["tenantId", "name", "quotas", "created"], [[t.tenantId, t.name, JSON.stringify(t.quotas), time(t.createdAt)]]);
    });

  const keys = program.command("keys").description("API keys of a tenant (operator token)");
  keys
    .command("create <tenantId>")
    .description("a new key for a tenant")
    .option("--scopes <list>", "comma-separated: produce, consume, manage (default all)", scopes)
    .option("--json", "print JSON")
    .action(async (tenantId: string, opts: { scopes?: Scope[]; json?: boolean }) => {
      const key = await ctx.operator().admin.keys.create(tenantId, opts.scopes ? { scopes: opts.scopes } : {});
      if (opts.json) printJson(key);
      else printTable(["keyId", "scopes", "apiKey"], [[key.keyId, key.scopes.join(","), key.apiKey]]);
    });
  keys
    .command("revoke <tenantId> <keyId>")
    .description("revoke a key at once")
    .action(async (tenantId: string, keyId: string) => {
      await ctx.operator().admin.keys.revoke(tenantId, keyId);
      note(`revoked ${keyId}`);
    });
}
