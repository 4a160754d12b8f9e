/**
 * Dead letters and redrive, both by reference: a new index row in the other topic points at
 * the same segment bytes; no message is copied. The x-reservoir-* headers of a dead letter
 * live in the index row (extra_headers), not in the bytes.
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";
import type { Topic } from "../metadata/topics.ts";
import type { Group } from "./groups.ts";
import { sqlArray } from "../metadata/sql-array.ts";

export interface Exhausted {
  partition: number;
  offset: number;
  attempts: number;
  lastError: string | null;
}

interface SourceRef {
  p: number;
  o: number;
  segment_id: string;
  byte_offset: number;
  byte_length: number;
  record_skip: number;
  min_timestamp: number;
  max_timestamp: number;
  extra_headers: Record<string, string> | null;
}

/** The index entry of each (partition, offset), as a reference to its bytes; absent if retention removed it. */
async function references(tx: Queryable, topicId: number, items: { partition: number; offset: number }[]): Promise<SourceRef[]> {
  return rows<SourceRef>(
    tx,
    sql`SELECT k.p, k.o, i.segment_id, i.byte_offset, i.byte_length, i.record_skip + (k.o - i.base_offset)::int AS record_skip,
               i.min_timestamp, i.max_timestamp, i.extra_headers
        FROM unnest(${sqlArray(
          items.map((i) => i.partition),
          "int",
        )}, ${sqlArray(
          items.map((i) => i.offset),
          "bigint",
        )}) AS k(p, o)
        JOIN LATERAL (
          SELECT * FROM segment_index s WHERE s.topic_id = ${topicId} AND s.partition = k.p AND s.base_offset <= k.o
          ORDER BY s.base_offset DESC LIMIT 1) i ON i.last_offset >= k.o`,
  );
}

/** Appends single-message index rows to a topic's partitions; returns their offsets in order. */
async function appendReferences(
  tx: Queryable,
  tenantId: string,
  topicId: number,
  refs: { partition: number; ref: SourceRef; headers: Record<string, string> | null }[],
): Promise<number[]> {
  if (refs.length === 0) return [];
  const counts = new Map<number, number>();
  for (const r of refs) counts.set(r.partition, (counts.get(r.partition) ?? 0) + 1);
  const parts = [...counts.keys()].sort((a, b) => a - b);
  const bases = await rows<{ partition: number; base: number }>(
    tx,
    sql`WITH locked AS MATERIALIZED (
          SELECT partition FROM partitions WHERE topic_id = ${topicId} AND partition = ANY(${sqlArray(parts, "int")})
          ORDER BY partition FOR UPDATE)
        UPDATE partitions p SET next_offset = p.next_offset + v.n
        FROM locked JOIN unnest(${sqlArray(parts, "int")}, ${sqlArray(
          parts.map((p) => counts.get(p)!),
          "bigint",
        )}) AS v(partition, n) USING (partition)
        WHERE p.topic_id = ${topicId} AND p.partition = locked.partition
        RETURNING p.partition, p.next_offset - v.n AS base`,
  );
  const next = new Map(bases.map((b) => [b.partition, b.base]));
  const offsets = refs.map((r) => {
    const o = next.get(r.partition)!;
    next.set(r.partition, o + 1);
    return o;
  });
  await tx.execute(sql`
    INSERT INTO segment_index (topic_id, partition, base_offset, last_offset, tenant_id, segment_id, byte_offset, byte_length,
                               record_skip, min_timestamp, max_timestamp, extra_headers)
    SELECT ${topicId}, r.p, r.o, r.o, ${tenantId}, r.seg, r.bo, r.bl, r.skip, r.mn, r.mx, r.h::jsonb
    FROM unnest(${sqlArray(
      refs.map((r) => r.partition),
      "int",
    )}, ${sqlArray(offsets, "bigint")}, ${sqlArray(
      refs.map((r) => r.ref.segment_id),
      "text",
    )},
                ${sqlArray(
                  refs.map((r) => r.ref.byte_offset),
                  "int",
                )}, ${sqlArray(
                  refs.map((r) => r.ref.byte_length),
                  "int",
                )},
                ${sqlArray(
                  refs.map((r) => r.ref.record_skip),
                  "int",
                )}, ${sqlArray(
                  refs.map((r) => r.ref.min_timestamp),
                  "bigint",
                )},
                ${sqlArray(
                  refs.map((r) => r.ref.max_timestamp),
                  "bigint",
                )}, ${sqlArray(
                  refs.map((r) => (r.headers ? JSON.stringify(r.headers) : null)),
                  "text",
                )})
      AS r(p, o, seg, bo, bl, skip, mn, mx, h)`);
  return offsets;
}

/** The dead-letter topic, created on demand with the source topic's partitions and retention. */
async function deadLetterTopic(tx: Queryable, group: Group, source: Topic): Promise<{ id: number; partitions: number }> {
  const existing = sql`SELECT id, partitions FROM topics WHERE tenant_id = ${group.tenantId} AND name = ${group.deadLetterTopic}`;
  let [topic] = await rows<{ id: number; partitions: number }>(
    tx,
    sql`WITH created AS (
          INSERT INTO topics (tenant_id, name, partitions, retention_hours)
          VALUES (${group.tenantId}, ${group.deadLetterTopic}, ${source.partitions}, ${source.retentionHours})
          ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id, partitions)
        SELECT id, partitions FROM created
        UNION ALL ${existing}`,
  );
  // Created by a concurrent transaction that committed while the INSERT waited on it: the
  // statement's snapshot predates that commit, so neither branch saw the row. A new statement does.
  topic ??= (await rows<{ id: number; partitions: number }>(tx, existing))[0];
  const id = topic.id;
  await tx.execute(sql`
    INSERT INTO partitions (topic_id, partition) SELECT ${id}, generate_series(0, ${topic.partitions} - 1)
    ON CONFLICT DO NOTHING`);
  return { id, partitions: topic.partitions };
}

/** Moves exhausted messages to the group's dead-letter topic (the caller settles their leases). */
export async function deadLetter(tx: Queryable, group: Group, source: Topic, items: Exhausted[], now: number): Promise<void> {
  const refs = await references(tx, source.id, items);
  if (refs.length === 0) return;
  const dlq = await deadLetterTopic(tx, group, source);
  const byKey = new Map(items.map((i) => [`${i.partition}:${i.offset}`, i]));
  const moved = refs.map((ref) => {
    const item = byKey.get(`${ref.p}:${ref.o}`)!;
    const headers = {
      ...(ref.extra_headers ?? {}),
      "x-reservoir-source-topic": source.name,
      "x-reservoir-source-partition": String(item.partition),
      "x-reservoir-source-offset": String(item.offset),
      "x-reservoir-group": group.name,
      "x-reservoir-error": item.lastError ?? `not acknowledged after ${item.attempts} deliveries (maxAttempts ${group.maxAttempts})`,
    };
    return { item, partition: item.partition % dlq.partitions, ref, headers };
  });
  const offsets = await appendReferences(tx, group.tenantId, dlq.id, moved);
  // A message can die again after a seek back. If its dead letter was redriven, this is a new
  // one (counted, redriven again); if it still waits, it stays the one (one per message).
  await tx.execute(sql`
    INSERT INTO dead_letters (group_id, partition, "offset", dead_letter_topic_id, dead_letter_partition, dead_letter_offset, at)
    SELECT ${group.id}, d.p, d.o, ${dlq.id}, d.dp, d.do, ${now}
    FROM unnest(${sqlArray(
      moved.map((m) => m.item.partition),
      "int",
    )}, ${sqlArray(
      moved.map((m) => m.item.offset),
      "bigint",
    )},
                ${sqlArray(
                  moved.map((m) => m.partition),
                  "int",
                )}, ${sqlArray(offsets, "bigint")}) AS d(p, o, dp, "do")
    ON CONFLICT (group_id, partition, "offset") DO UPDATE SET
      dead_letter_topic_id = excluded.dead_letter_topic_id, dead_letter_partition = excluded.dead_letter_partition,
      dead_letter_offset = excluded.dead_letter_offset, at = excluded.at, redriven_at = NULL
    WHERE dead_letters.redriven_at IS NOT NULL`);
}

/** Moves up to `max` of the group's dead letters back to the source topic, as new messages. */
export async function redrive(tx: Queryable, group: Group, source: Topic, max: number, now: number): Promise<number> {
  const letters = await rows<{ partition: number; offset: number; dlq: number; dp: number; do: number }>(
    tx,
    sql`SELECT partition, "offset", dead_letter_topic_id AS dlq, dead_letter_partition AS dp, dead_letter_offset AS "do"
        FROM dead_letters WHERE group_id = ${group.id} AND redriven_at IS NULL
        ORDER BY at, partition, "offset" LIMIT ${max} FOR UPDATE SKIP LOCKED`,
  );
  if (letters.length === 0) return 0;
  const byTopic = new Map<number, typeof letters>();
  for (const l of letters) byTopic.set(l.dlq, [...(byTopic.get(l.dlq) ?? []), l]);
  const back: { partition: number; ref: SourceRef; headers: Record<string, string> | null }[] = [];
  for (const [dlqId, list] of byTopic) {
    const refs = await references(
      tx,
      dlqId,
      list.map((l) => ({ partition: l.dp, offset: l.do })),
    );
    const found = new Map(refs.map((r) => [`${r.p}:${r.o}`, r]));
    for (const l of list) {
      const ref = found.get(`${l.dp}:${l.do}`);
      if (!ref) continue; // gone with the dead-letter topic's retention
      const headers = Object.fromEntries(Object.entries(ref.extra_headers ?? {}).filter(([k]) => !k.startsWith("x-reservoir-")));
      back.push({ partition: l.partition % source.partitions, ref, headers: Object.keys(headers).length ? headers : null });
    }
  }
  await appendReferences(tx, group.tenantId, source.id, back);
  await tx.execute(sql`
    UPDATE dead_letters d SET redriven_at = ${now}
    FROM unnest(${sqlArray(
      letters.map((l) => l.partition),
      "int",
    )}, ${sqlArray(
      letters.map((l) => l.offset),
      "bigint",
    )}) AS k(p, o)
    WHERE d.group_id = ${group.id} AND d.partition = k.p AND d."offset" = k.o`);
  return letters.length;
}
