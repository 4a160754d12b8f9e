/**
 * The metrics the core records, as a small interface with no runtime behind it: the core says
 * what happened (a request, a flush, a delivery) and each entry point supplies the registry
 * that counts it and renders the Prometheus text exposition (functions/runtime/prom-registry.ts:
 * prom-client, on Node and on workerd alike). Instances count only their own work: a Node
 * process its requests, a Worker isolate its own (see README, "Metrics").
 */

export type Labels = Record<string, string | number>;

export interface Counter {
  inc(labels?: Labels, value?: number): void;
}

export interface Histogram {
  observe(value: number, labels?: Labels): void;
}

/** A value set at scrape time (from the database): reset() drops the label sets of the last scrape. */
export interface Gauge {
  set(value: number, labels?: Labels): void;
  reset(): void;
}

export interface MetricDefinition {
  /** A Prometheus metric name (counters end in _total). */
  name: string;
  help: string;
  labelNames?: readonly string[];
}

export interface MetricsRegistry {
  counter(definition: MetricDefinition): Counter;
  /** A counter kept elsewhere (e.g. the object store wrapper's tallies), read when scraped. */
  counterFrom(definition: MetricDefinition, read: () => number): void;
  histogram(definition: MetricDefinition & { buckets: readonly number[] }): Histogram;
  gauge(definition: MetricDefinition): Gauge;
  /** The text exposition (version 0.0.4) of everything registered. */
  render(): Promise<string>;
  readonly contentType: string;
}
