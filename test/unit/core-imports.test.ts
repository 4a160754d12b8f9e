/**
 * DESIGN.md principle 4: the core never imports `node:*` or `cloudflare:*` (nor a Node-only
 * package); only the entry points and the Node-only folder store may.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const runtimeSpecific = new Set([
  "functions/node.ts",
  "functions/worker.ts",
  "storage/objects/folder-store.ts",
  "functions/push/resolve-node.ts",
  "functions/push/transport-node.ts",
  "functions/node-s3.ts",
  "functions/aws-credentials.ts",
  "functions/native-crc32c.ts",
]);
const forbidden = /(?:from|import)\s*\(?\s*["'](node:[^"']+|cloudflare:[^"']+|fs|path|os|net|crypto|@electric-sql\/pglite[^"']*|@hono\/node-server[^"']*|postgres)["']/g;

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("the core is runtime-neutral", () => {
  const files = [...sources("functions"), ...sources("storage")].filter((f) => !runtimeSpecific.has(f));

  it("finds the core's sources", () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files)("%s imports no runtime module", (file) => {
    const text = readFileSync(join(root, file), "utf8");
    const imports = [...text.matchAll(forbidden)].map((m) => m[1]);
    expect(imports, relative(root, file)).toEqual([]);
  });
});
