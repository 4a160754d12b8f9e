import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // Two files at a time on this 2-core machine: most of a file's time is waiting on the
    // servers it started (Node, wrangler dev, s3rver, Postgres), not on its own CPU.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: [],
  },
});
