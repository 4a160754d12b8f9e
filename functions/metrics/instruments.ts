/**
 * The metric families of GET /metrics (API.md "Operations"), declared once, and the hooks
 * through which the core records them: the request middleware (requests by route and status),
 * the produce and receive routes (latency), the batcher (PUTs, commits, bytes and messages per
 * flush), reads, receives and webhooks (messages out, deliveries by outcome), the object store
 * wrapper (PUTs and GETs). Consumer lag and storage are gauges read from the database at
 * scrape time (scrape.ts).
 */
import type { FlushObserver } from "../../storage/log/batcher.ts";
import type { StoreCounters } from "../../storage/objects/object-store.ts";
import type { DeliveryObserver } from "../push/dispatcher.ts";
import type { Counter, Gauge, Histogram, MetricsRegistry } from "./registry.ts";

/** Seconds: from 1 ms to 30 s (a long-poll's longest wait). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Bytes per flush: 256 B to 8 MiB (maxBatchBytes is 4 MiB by default; one request may bring 8). */
const BYTES_BUCKETS = [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 8_388_608];
const COUNT_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

export interface Instruments {
  registry: MetricsRegistry;
  requests: Counter;
  produceSeconds: Histogram;
  receiveSeconds: Histogram;
  receivesEmpty: Counter;
  leasesSkipped: Counter;
  messagesOut: Counter;
  flush: FlushObserver;
  delivery: DeliveryObserver;
  consumerLag: Gauge;
  storageObjects: Gauge;
  storageBytes: Gauge;
  readCacheBytes: Gauge;
  readCacheMaxBytes: Gauge;
  readCacheEntries: Gauge;
}

export function createInstruments(registry: MetricsRegistry, store: StoreCounters): Instruments {
  const flushes = registry.counter({
    name: "reservoir_flushes_total",
    help: "Produce flushes (one segment PUT and one commit each), by outcome",
    labelNames: ["outcome"],
  });
  const puts = registry.counter({ name: "reservoir_flush_puts_total", help: "Segment objects PUT by produce flushes" });
  const commits = registry.counter({ name: "reservoir_flush_commits_total", help: "Postgres commit transactions run by produce flushes" });
  const flushBytes = registry.histogram({
    name: "reservoir_flush_bytes",
    help: "Bytes of the segment written per committed flush",
    buckets: BYTES_BUCKETS,
  });
  const flushMessages = registry.histogram({
    name: "reservoir_flush_messages",
    help: "Messages per committed flush",
    buckets: COUNT_BUCKETS,
  });
  const flushRequests = registry.histogram({
    name: "reservoir_flush_requests",
    help: "Produce requests coalesced per committed flush",
    buckets: COUNT_BUCKETS,
  });
  const putSeconds = registry.histogram({
    name: "reservoir_flush_put_duration_seconds",
    help: "Duration of each flush's segment PUT",
    buckets: LATENCY_BUCKETS,
  });
  const commitSeconds = registry.histogram({
    name: "reservoir_flush_commit_duration_seconds",
    help: "Duration of each flush's Postgres commit",
    buckets: LATENCY_BUCKETS,
  });
  const messagesIn = registry.counter({
    name: "reservoir_messages_in_total",
    help: "Messages stored by committed flushes (a transaction's pending messages included)",
  });
  const deliveries = registry.counter({
    name: "reservoir_webhook_deliveries_total",
    help: "Webhook delivery attempts by outcome (succeeded: a 2xx in time; failed: anything else)",
    labelNames: ["outcome"],
  });
  const deliverySeconds = registry.histogram({
    name: "reservoir_webhook_delivery_duration_seconds",
    help: "Duration of each webhook delivery attempt",
    buckets: LATENCY_BUCKETS,
  });
  const messagesOut = registry.counter({
    name: "reservoir_messages_out_total",
    help: "Messages handed out, by path: read (by offset), receive (consumer groups, redeliveries included), webhook (successful deliveries)",
    labelNames: ["via"],
  });
  registry.counterFrom({ name: "reservoir_object_store_puts_total", help: "PUT requests to the object store" }, () => store.puts);
  registry.counterFrom({ name: "reservoir_object_store_gets_total", help: "GET requests to the object store" }, () => store.gets);

  return {
    registry,
    requests: registry.counter({
      name: "reservoir_http_requests_total",
      help: "HTTP requests by method, route pattern and status",
      labelNames: ["method", "route", "status"],
    }),
    // Unlabelled: one histogram each, which every exposition parser reads (failures show in
    // reservoir_http_requests_total by status; empty receives in reservoir_receives_empty_total).
    produceSeconds: registry.histogram({
      name: "reservoir_produce_duration_seconds",
      help: "Produce requests answered with offsets (200) or pending (202), from the route's start to the answer",
      buckets: LATENCY_BUCKETS,
    }),
    receiveSeconds: registry.histogram({
      name: "reservoir_receive_duration_seconds",
      help: "Consumer-group receives that returned messages, from the route's start (long-poll wait included) to the answer",
      buckets: LATENCY_BUCKETS,
    }),
    receivesEmpty: registry.counter({
      name: "reservoir_receives_empty_total",
      help: "Consumer-group receives that returned no message (a long-poll that ended empty)",
    }),
    leasesSkipped: registry.counter({
      name: "reservoir_receive_leases_skipped_total",
      help: "Receives that waited before their first lease: a lease of this instance had just left nothing to take",
    }),
    messagesOut,
    flush: {
      flushed: (flush) => {
        flushes.inc({ outcome: "committed" });
        puts.inc();
        commits.inc();
        flushBytes.observe(flush.bytes);
        flushMessages.observe(flush.messages);
        flushRequests.observe(flush.requests);
        putSeconds.observe(flush.putMs / 1000);
        commitSeconds.observe(flush.commitMs / 1000);
        messagesIn.inc(undefined, flush.messages);
      },
      failed: (stage) => {
        flushes.inc({ outcome: "failed" });
        if (stage !== "encode") puts.inc();
        if (stage === "commit") commits.inc();
      },
    },
    delivery: {
      attempted: (succeeded, durationMs) => {
        deliveries.inc({ outcome: succeeded ? "succeeded" : "failed" });
        deliverySeconds.observe(durationMs / 1000);
        if (succeeded) messagesOut.inc({ via: "webhook" });
      },
    },
    consumerLag: registry.gauge({
      name: "reservoir_consumer_lag",
      help: "Messages not yet committed by a consumer group (high watermark minus committed offset, summed over partitions); read from the database when scraped, the 1,000 largest",
      labelNames: ["tenant", "topic", "group"],
    }),
    storageObjects: registry.gauge({
      name: "reservoir_storage_objects",
      help: "Committed segment objects per tenant; read from the database when scraped",
      labelNames: ["tenant"],
    }),
    storageBytes: registry.gauge({
      name: "reservoir_storage_bytes",
      help: "Bytes of committed segment objects per tenant; read from the database when scraped",
      labelNames: ["tenant"],
    }),
    // The read cache (storage/log/batch-cache.ts), set at scrape time: a bounded structure shown
    // against its bound, so a soak (docs/reliability.md) can tell it filling from a leak.
    readCacheBytes: registry.gauge({
      name: "reservoir_read_cache_bytes",
      help: "Estimated memory held by this instance's read cache of decoded batches (encoded bytes plus decoded records)",
    }),
    readCacheMaxBytes: registry.gauge({
      name: "reservoir_read_cache_max_bytes",
      help: "The bound of reservoir_read_cache_bytes: least recently used batches are dropped beyond it",
    }),
    readCacheEntries: registry.gauge({
      name: "reservoir_read_cache_entries",
      help: "Batches (byte ranges of segments) in this instance's read cache",
    }),
  };
}
