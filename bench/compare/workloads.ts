/** The compare bench's workloads: topics of 16 or 1 partitions, messages of 1 KiB or 100 bytes. */
import type { Workload } from "./system.ts";

export const WORKLOADS: Workload[] = [
  { name: "16p-1KiB", partitions: 16, messageBytes: 1024 },
  { name: "1p-1KiB", partitions: 1, messageBytes: 1024 },
  { name: "16p-100B", partitions: 16, messageBytes: 100 },
];

/** The workloads a comma-separated list names, in its order (an unknown name throws). */
export function workloadsNamed(list: string): Workload[] {
  return list.split(",").map((name) => {
    const w = WORKLOADS.find((x) => x.name === name);
    if (!w) throw new Error(`unknown workload '${name}' (known: ${WORKLOADS.map((x) => x.name).join(", ")})`);
    return w;
  });
}
