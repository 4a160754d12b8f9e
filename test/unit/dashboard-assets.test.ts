// The dashboard's assets module (functions/dashboard/assets.generated.ts) is built from
// dashboard/ by `npm run dashboard:build`; the committed one must be what the sources build now.
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { buildDashboardModule, generatedModule } from "../../dashboard/build.ts";

it("functions/dashboard/assets.generated.ts is what dashboard/ builds (run `npm run dashboard:build`)", async () => {
  const built = await buildDashboardModule();
  expect(readFileSync(generatedModule, "utf8") === built, "the committed dashboard assets are stale: run `npm run dashboard:build`").toBe(
    true,
  );
  // Self-contained: the page names nothing outside its own origin.
  expect(built).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
});
