/**
 * What a Reservoir produce request costs beyond the storage work it waits for (issue 5: "produce
 * p99 minus (PUT p99 + commit p99) ≤ 10 ms"). The request p99 is the client's own round trip of
 * each HTTP request (send → answer); the PUT and commit p99s come from the server's cumulative
 * histograms, as the difference between a snapshot before the run and one after it.
 */
import { histogramDelta, histogramPercentile } from "../../storage/log/latency-histogram.ts";
import { percentile } from "../lib/load.ts";
import { round } from "./result.ts";
import type { ServerLatency } from "./system.ts";

export interface ProduceOverhead {
  /** p99 of the produce requests' round trips as the client measured them. */
  requestP99Ms: number | null;
  /** p99 of the segment PUTs of the run's flushes. */
  putP99Ms: number | null;
  /** p99 of the Postgres commits of the run's flushes. */
  commitP99Ms: number | null;
  /** requestP99Ms − (putP99Ms + commitP99Ms): HTTP, parsing, encoding, and waiting for a flush. */
  overheadP99Ms: number | null;
  /** p99 of a request's wait inside the server, from handing its messages to the batcher to its offsets. */
  serverWaitP99Ms: number | null;
  /** p50s of the same PUTs and commits (issue 15's steady-rate target is stated in p50s). */
  putP50Ms?: number | null;
  commitP50Ms?: number | null;
  /** p50s of the request round trips and of the server's wait (where a steady-rate p50 goes). */
  requestP50Ms?: number | null;
  serverWaitP50Ms?: number | null;
}

export function produceOverhead(before: ServerLatency, after: ServerLatency, requestLatenciesMs: number[]): ProduceOverhead {
  const p99 = (name: keyof ServerLatency) => histogramPercentile(histogramDelta(before[name], after[name]), 99);
  const p50 = (name: keyof ServerLatency) => histogramPercentile(histogramDelta(before[name], after[name]), 50);
  const sorted = requestLatenciesMs.slice().sort((a, b) => a - b);
  const request = sorted.length ? percentile(sorted, 99) : null;
  const put = p99("putMs");
  const commit = p99("commitMs");
  const wait = p99("produceWaitMs");
  const r = (x: number | null) => (x === null ? null : round(x));
  return {
    requestP99Ms: r(request),
    putP99Ms: r(put),
    commitP99Ms: r(commit),
    overheadP99Ms: request === null || put === null || commit === null ? null : r(request - (put + commit)),
    serverWaitP99Ms: r(wait),
    putP50Ms: r(p50("putMs")),
    commitP50Ms: r(p50("commitMs")),
    requestP50Ms: sorted.length ? r(percentile(sorted, 50)) : null,
    serverWaitP50Ms: r(p50("produceWaitMs")),
  };
}
