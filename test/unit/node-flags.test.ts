import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SERVER_NODE_FLAGS } from "../../functions/runtime/node/node-flags.ts";

describe("the server's Node flags", () => {
  it("are those `npm start` runs it with", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string> };
    const words = pkg.scripts.start.split(/\s+/);
    // node FLAGS... --import tsx functions/runtime/node/server.ts
    expect(words[0]).toBe("node");
    expect(words.slice(-3)).toEqual(["--import", "tsx", "functions/runtime/node/server.ts"]);
    expect(words.slice(1, -3)).toEqual([...SERVER_NODE_FLAGS]);
  });
});
