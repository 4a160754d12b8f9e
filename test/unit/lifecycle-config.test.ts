// The GC grace period bounds a flush's commit (DESIGN.md, write path step 3): a flush not
// committed within half of it is failed, so the orphan pass never deletes an object a commit
// could still name.
import { describe, expect, it } from "vitest";
import { commitDeadlineMs, ConfigError, readConfig } from "../../functions/config.ts";

describe("RESERVOIR_GC_GRACE_SECONDS and the commit deadline", () => {
  it("defaults to an hour, and the commit deadline to 60 s", () => {
    const config = readConfig({});
    expect(config.gcGraceSeconds).toBe(3600);
    expect(commitDeadlineMs(config)).toBe(60_000);
    expect(config.compactionTargetBytes).toBe(4 * 1024 * 1024);
    expect(config.maintenanceIntervalSeconds).toBe(60);
  });

  it("a short grace period halves into the commit deadline", () => {
    expect(commitDeadlineMs(readConfig({ RESERVOIR_GC_GRACE_SECONDS: "10" }))).toBe(5000);
    expect(commitDeadlineMs(readConfig({ RESERVOIR_GC_GRACE_SECONDS: "2" }))).toBe(1000);
  });

  it.each(["0", "1", "-5", "abc", "2.5"])("refuses RESERVOIR_GC_GRACE_SECONDS=%s", (value) => {
    expect(() => readConfig({ RESERVOIR_GC_GRACE_SECONDS: value })).toThrow(ConfigError);
    expect(() => readConfig({ RESERVOIR_GC_GRACE_SECONDS: value })).toThrow(/RESERVOIR_GC_GRACE_SECONDS/);
  });
});
