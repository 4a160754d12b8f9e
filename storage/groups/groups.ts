/** Consumer group configuration, and the per-partition positions created with it. */
import { and, eq, sql } from "drizzle-orm";
import type { Database, Queryable } from "../metadata/db.ts";
import { consumerGroups } from "../metadata/schema.ts";
import type { Topic } from "../metadata/topics.ts";

export interface GroupSettings {
  startAt: "earliest" | "latest";
  ordering: "none" | "key";
  maxAttempts: number;
  deadLetterTopic: string;
}

export interface Group extends GroupSettings {
  id: number;
  tenantId: string;
  topicId: number;
  name: string;
}

export function defaultGroupSettings(topicName: string): GroupSettings {
  return { startAt: "latest", ordering: "none", maxAttempts: 5, deadLetterTopic: `${topicName}.dlq` };
}

const columns = {
  id: consumerGroups.id,
  tenantId: consumerGroups.tenantId,
  topicId: consumerGroups.topicId,
  name: consumerGroups.name,
  startAt: consumerGroups.startAt,
  ordering: consumerGroups.ordering,
  maxAttempts: consumerGroups.maxAttempts,
  deadLetterTopic: consumerGroups.deadLetterTopic,
};

export async function findGroup(db: Queryable, topic: Topic, name: string): Promise<Group | null> {
  const [row] = await db
    .select(columns)
    .from(consumerGroups)
    .where(and(eq(consumerGroups.topicId, topic.id), eq(consumerGroups.name, name)))
    .limit(1);
  return row ?? null;
}

/**
 * The topic's consumer groups by name, at most `limit`; subscriptions' own groups
 * (`subscription:<name>`, a name no client can give) are listed with their subscriptions.
 */
export async function listGroups(db: Queryable, topic: Topic, limit: number): Promise<Group[]> {
  return db
    .select(columns)
    .from(consumerGroups)
    .where(and(eq(consumerGroups.topicId, topic.id), sql`${consumerGroups.name} NOT LIKE 'subscription:%'`))
    .orderBy(consumerGroups.name)
    .limit(limit);
}

/**
 * Creates the group (positions at the earliest retained or the next offset of each partition)
 * or, when it exists and `settings` are given, updates its settings. Positions never move here.
 */
export async function ensureGroup(
  db: Database,
  tenantId: string,
  topic: Topic,
  name: string,
  settings?: Partial<GroupSettings>,
): Promise<{ group: Group; created: boolean }> {
  const existing = await findGroup(db, topic, name);
  if (existing && !settings) return { group: existing, created: false };
  return db.transaction(async (tx) => {
    const values = { tenantId, topicId: topic.id, name, ...pick({ ...defaultGroupSettings(topic.name), ...(settings ?? {}) }) };
    // Only the settings given change; first use without settings never overwrites a group
    // that a concurrent PUT just wrote.
    const changed = Object.fromEntries(Object.entries(settings ?? {}).filter(([, v]) => v !== undefined));
    const insert = tx.insert(consumerGroups).values(values);
    const inserted =
      Object.keys(changed).length > 0
        ? await insert
            .onConflictDoUpdate({ target: [consumerGroups.topicId, consumerGroups.name], set: changed })
            .returning({ ...columns, created: sql<boolean>`xmax = 0` })
        : await insert.onConflictDoNothing().returning({ ...columns, created: sql<boolean>`true` });
    if (inserted.length === 0) return { group: (await findGroup(tx, topic, name))!, created: false };
    const { created, ...group } = inserted[0];
    if (created) await addGroupPartitions(tx, group.id, topic.id, group.startAt);
    return { group, created };
  });
}

function pick(s: GroupSettings): GroupSettings {
  return { startAt: s.startAt, ordering: s.ordering, maxAttempts: s.maxAttempts, deadLetterTopic: s.deadLetterTopic };
}

/**
 * Gives a group a position in every partition it lacks: at creation per `startAt`; for
 * partitions added to the topic later, at their start (they were empty when added).
 */
export async function addGroupPartitions(db: Queryable, groupId: number, topicId: number, startAt: "earliest" | "latest") {
  await db.execute(sql`
    INSERT INTO group_partitions (group_id, partition, committed, frontier)
    SELECT ${groupId}, p.partition, s.start, s.start
    FROM partitions p
    CROSS JOIN LATERAL (SELECT CASE WHEN ${startAt} = 'latest' THEN p.next_offset
      ELSE COALESCE((SELECT min(i.base_offset) FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition), p.next_offset)
      END AS start) s
    WHERE p.topic_id = ${topicId}
    ON CONFLICT DO NOTHING`);
}

/** After a topic grows: every group of it starts the new partitions at offset 0. */
export async function addPartitionsToGroups(db: Queryable, topicId: number) {
  await db.execute(sql`
    INSERT INTO group_partitions (group_id, partition, committed, frontier)
    SELECT g.id, p.partition, 0, 0 FROM consumer_groups g JOIN partitions p ON p.topic_id = g.topic_id
    WHERE g.topic_id = ${topicId}
    ON CONFLICT DO NOTHING`);
}
