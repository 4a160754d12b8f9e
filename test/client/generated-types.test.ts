// The SDK's types (client/src/generated/openapi.ts) must be what the server's OpenAPI document
// generates today: a route or schema changed without regenerating them fails here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { generateCommand, generatedTypes, generatedTypesPath } from "../../client/scripts/openapi-types.ts";
import { repoRoot } from "../support/node-server.ts";

test("the SDK's generated types match the server's OpenAPI document", async () => {
  const committed = readFileSync(join(repoRoot, generatedTypesPath), "utf8");
  const fresh = await generatedTypes();
  if (committed !== fresh) {
    const a = committed.split("\n");
    const b = fresh.split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    expect.fail(
      `${generatedTypesPath} is out of date with GET /openapi.json: run \`${generateCommand}\` and commit the result.\n` +
        `first difference at line ${line + 1}:\n  committed: ${a[line]}\n  generated: ${b[line]}`,
    );
  }
  expect(committed).toBe(fresh);
});
