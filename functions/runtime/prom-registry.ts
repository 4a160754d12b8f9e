/**
 * The metrics registry of both entry points, on prom-client. It runs unchanged on Node and
 * under workerd (nodejs_compat; checked under `wrangler dev` by test/contract/worker.test.ts),
 * so the two runtimes answer GET /metrics with the same text. Only the metric classes are used:
 * no default process metrics (a Worker has no process to describe, and an isolate's would
 * mislead), no cluster aggregation.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Labels, MetricDefinition, MetricsRegistry } from "../metrics/registry.ts";

export function promRegistry(): MetricsRegistry {
  const registry = new Registry();
  const common = (d: MetricDefinition) => ({ name: d.name, help: d.help, labelNames: [...(d.labelNames ?? [])], registers: [registry] });
  return {
    counter(definition) {
      const counter = new Counter(common(definition));
      return { inc: (labels?: Labels, value = 1) => (labels ? counter.inc(labels, value) : counter.inc(value)) };
    },
    counterFrom(definition, read) {
      new Counter({
        ...common(definition),
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    },
    histogram(definition) {
      const histogram = new Histogram({ ...common(definition), buckets: [...definition.buckets] });
      return { observe: (value: number, labels?: Labels) => (labels ? histogram.observe(labels, value) : histogram.observe(value)) };
    },
    gauge(definition) {
      const gauge = new Gauge(common(definition));
      return {
        set: (value: number, labels?: Labels) => (labels ? gauge.set(labels, value) : gauge.set(value)),
        reset: () => gauge.reset(),
      };
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
