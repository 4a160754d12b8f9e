// docs/problems.md documents every problem code the service can answer, with its status, and
// nothing else: the list is checked against the table in functions/problem.ts, which is also
// what GET /problems/{code} serves (the contract suite follows each problem's `type` there).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { problemTypes, titleOf } from "../../functions/problem.ts";
import { errorCodeNames } from "../../storage/errors.ts";
import { repoRoot } from "../support/node-server.ts";

const doc = readFileSync(`${repoRoot}/docs/problems.md`, "utf8");
const documented = new Map(
  [...doc.matchAll(/^## `([a-z_]+)`\n\n\*\*(\d{3}) ([^*]+)\.\*\*/gm)].map((m) => [m[1], { status: Number(m[2]), title: m[3] }]),
);

describe("docs/problems.md", () => {
  it("documents every code of the error family, with the status and title the service answers", () => {
    expect(Object.keys(problemTypes).sort()).toEqual([...errorCodeNames].sort());
    for (const code of errorCodeNames) {
      expect(documented.get(code), `docs/problems.md: ## \`${code}\``).toEqual({ status: problemTypes[code].status, title: titleOf(code) });
    }
  });

  it("documents no code the service does not have", () => {
    expect([...documented.keys()].filter((code) => !(errorCodeNames as readonly string[]).includes(code))).toEqual([]);
  });
});
