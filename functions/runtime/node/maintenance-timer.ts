/**
 * Node: a maintenance pass every RESERVOIR_MAINTENANCE_INTERVAL_SECONDS. Every instance runs the
 * timer; the lease (storage/lifecycle/lease.ts) lets one of them do each pass. A pass never
 * overlaps the next one here: the next starts an interval after the last one ended.
 */
import { describeError } from "../../../storage/errors.ts";
import { maintainIfFree, type MaintenanceIo } from "../../../storage/lifecycle/maintenance.ts";
import type { Config } from "../../config.ts";
import type { LifecycleSettings } from "../../runtime.ts";

export function startMaintenanceTimer(io: MaintenanceIo, settings: LifecycleSettings, config: Pick<Config, "maintenanceIntervalSeconds">) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(run, config.maintenanceIntervalSeconds * 1000);
    timer.unref();
  };
  const run = async () => {
    try {
      const report = await maintainIfFree(io, settings);
      if (report && (report.retention.batches || report.compaction.segmentsIn || report.collected.objects || report.orphans.objects)) {
        console.log(`reservoir: maintenance ${JSON.stringify(report)}`);
      }
    } catch (error) {
      console.error(`reservoir: a maintenance pass failed (the next one retries): ${describeError(error)}`);
    } finally {
      schedule();
    }
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
