/**
 * Partition choice, as API.md states it: the given partition; else a stable hash of the key
 * (Kafka's murmur2, so keys land where a Kafka producer would put them); else one partition
 * per request, round-robin across requests (Kafka's sticky partitioner: fewer, larger batches).
 */
const encoder = new TextEncoder();

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), seed 0x9747b28c. */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const blocks = length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    let k = data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = blocks << 2;
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[tail + 2] << 16;
    if (rest >= 2) h ^= data[tail + 1] << 8;
    h ^= data[tail];
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(encoder.encode(key)) & 0x7fffffff) % partitions;
}

export class StickyPartitioner {
  private next = new Map<string, number>();

  /** The partition for the keyless messages of one request to `topic`. */
  forRequest(topic: string, partitions: number): number {
    const n = this.next.get(topic) ?? Math.floor(Math.random() * partitions);
    this.next.set(topic, n + 1);
    return n % partitions;
  }
}
