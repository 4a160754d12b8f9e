/**
 * CPU seconds per process during a run: on a machine of 2 cores the client, the server and what
 * the server talks to (Postgres, s3rver) compete for the same CPUs, so this tells what limits a
 * system, and what a message costs in CPU whoever spends it.
 *
 * Reservoir: its server process and the processes at the other end of its TCP connections.
 * The brokers (NATS, RabbitMQ, Postgres for pg-boss) are not started by the harness: they are
 * found at the other end of this client's own TCP connections. Processes the harness started
 * (s3rver) count too. Other work on the machine does not.
 */
import { cpuDelta, cpuSnapshot, threadDelta, threadSeconds, type CpuSnapshot } from "../lib/proc-cpu.ts";
import { round } from "./result.ts";
import type { SystemUnderTest } from "./system.ts";

export interface RunCpu {
  wallSeconds: number;
  /** CPU seconds (user + system) per process label: "client", "server", "postgres", "nats-server", "beam.smp"... */
  seconds: Record<string, number>;
  /** All of `seconds`. */
  totalSeconds: number;
  /** The server's threads (Reservoir): main, the busiest other (embedded: PGlite's), the rest. */
  serverThreads?: { main: number; busiestOther: number; rest: number };
}

/** Starts measuring; the function returned ends the measurement. */
export function measureCpu(sut: SystemUnderTest): () => RunCpu {
  const serverPid = sut.serverPid?.();
  const snapshot = (): CpuSnapshot => cpuSnapshot(serverPid ?? process.pid);
  const before = snapshot();
  const threadsBefore = serverPid === undefined ? undefined : threadSeconds(serverPid);
  return () => {
    const use = cpuDelta(before, snapshot());
    const serverThreads = serverPid === undefined ? undefined : threadDelta(serverPid, threadsBefore!, threadSeconds(serverPid));
    const seconds: Record<string, number> = {};
    for (const [label, s] of Object.entries(use.seconds)) {
      if (label === "server main thread") continue; // a part of "server", shown by proc-cpu for profiling
      // Snapshotting this client's own pid labels it "server": it is the client here. esbuild is
      // tsx compiling the client's TypeScript on demand, a child of the client.
      const name = (serverPid === undefined && label === "server") || label === "esbuild" ? "client" : label;
      seconds[name] = round((seconds[name] ?? 0) + s);
    }
    const totalSeconds = round(Object.values(seconds).reduce((a, b) => a + b, 0));
    return { wallSeconds: use.wallSeconds, seconds, totalSeconds, ...(serverThreads && { serverThreads }) };
  };
}

export const cpuMicrosPerMessage = (cpu: RunCpu, messages: number) => round((cpu.totalSeconds / messages) * 1e6, 1);
