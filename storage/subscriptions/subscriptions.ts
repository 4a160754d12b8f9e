/**
 * Webhook subscriptions: configuration rows, each tied to a consumer group of its own
 * (`subscription:<name>`, a name no client group can take) that holds positions and leases.
 */
import { sql } from "drizzle-orm";
import { rows, type Database, type Queryable } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import { holdTopic } from "../metadata/topic-hold.ts";
import type { Topic } from "../metadata/topics.ts";
import { ensureGroup, type Group, type GroupSettings } from "../groups/groups.ts";

export type SubscriptionState = "active" | "paused" | "disabled";
export type PayloadFormat = "json" | "cloudevents";

export interface DeliverySettings {
  url: string;
  format: PayloadFormat;
  maxConcurrency: number;
  timeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  filterHeaders: Record<string, string> | null;
}

export type SubscriptionSettings = DeliverySettings & GroupSettings;

export interface Subscription extends DeliverySettings {
  id: number;
  tenantId: string;
  topicId: number;
  name: string;
  topic: Topic;
  group: Group;
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: number | null;
  secretRotatedAt: number | null;
  state: SubscriptionState;
  stateReason: string | null;
  createdAt: number;
}

export function defaultSubscriptionSettings(topic: Topic): Omit<SubscriptionSettings, "url"> {
  return {
    format: "json",
    maxConcurrency: 10,
    timeoutMs: 10_000,
    backoffInitialMs: 5_000,
    backoffMaxMs: 3_600_000,
    filterHeaders: null,
    startAt: "latest",
    ordering: "none",
    maxAttempts: 10,
    deadLetterTopic: `${topic.name}.dlq`,
  };
}

export const groupNameOf = (subscriptionName: string) => `subscription:${subscriptionName}`;

interface RawSubscription {
  id: number;
  tenant_id: string;
  topic_id: number;
  name: string;
  group_id: number;
  url: string;
  format: PayloadFormat;
  max_concurrency: number;
  timeout_ms: number;
  backoff_initial_ms: number;
  backoff_max_ms: number;
  filter_headers: Record<string, string> | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
  secret_rotated_at: number | null;
  state: SubscriptionState;
  state_reason: string | null;
  created_at: number;
  g_name: string;
  start_at: "earliest" | "latest";
  ordering: "none" | "key";
  max_attempts: number;
  dead_letter_topic: string;
  t_name: string;
  t_partitions: number;
  t_retention_hours: number;
  t_retention_bytes: number | null;
  t_created_at: string | Date;
}

function toSubscription(r: RawSubscription): Subscription {
  const group: Group = {
    id: r.group_id,
    tenantId: r.tenant_id,
    topicId: r.topic_id,
    name: r.g_name,
    startAt: r.start_at,
    ordering: r.ordering,
    maxAttempts: r.max_attempts,
    deadLetterTopic: r.dead_letter_topic,
  };
  return {
    id: r.id,
    tenantId: r.tenant_id,
    topicId: r.topic_id,
    name: r.name,
    topic: {
      id: r.topic_id,
      name: r.t_name,
      partitions: r.t_partitions,
      retentionHours: r.t_retention_hours,
      retentionBytes: r.t_retention_bytes === null ? null : Number(r.t_retention_bytes),
      createdAt: new Date(r.t_created_at).getTime(),
    },
    group,
    url: r.url,
    format: r.format,
    maxConcurrency: r.max_concurrency,
    timeoutMs: r.timeout_ms,
    backoffInitialMs: r.backoff_initial_ms,
    backoffMaxMs: r.backoff_max_ms,
    filterHeaders: r.filter_headers,
    secret: r.secret,
    previousSecret: r.previous_secret,
    previousSecretExpiresAt: r.previous_secret_expires_at,
    secretRotatedAt: r.secret_rotated_at,
    state: r.state,
    stateReason: r.state_reason,
    createdAt: r.created_at,
  };
}

const joinedColumns = sql`s.*, g.name AS g_name, g.start_at, g.ordering, g.max_attempts, g.dead_letter_topic,
    t.name AS t_name, t.partitions AS t_partitions, t.retention_hours AS t_retention_hours, t.retention_bytes AS t_retention_bytes, t.created_at AS t_created_at`;
const joinedTables = sql`subscriptions s JOIN consumer_groups g ON g.id = s.group_id JOIN topics t ON t.id = s.topic_id`;
const selectJoined = sql`SELECT ${joinedColumns} FROM ${joinedTables}`;

/** The topic's subscriptions by name, at most `limit`. */
export async function listSubscriptions(db: Queryable, topic: Topic, limit: number): Promise<Subscription[]> {
  const found = await rows<RawSubscription>(db, sql`${selectJoined} WHERE s.topic_id = ${topic.id} ORDER BY s.name LIMIT ${limit}`);
  return found.map(toSubscription);
}

export async function findSubscription(db: Queryable, topic: Topic, name: string): Promise<Subscription | null> {
  const [row] = await rows<RawSubscription>(db, sql`${selectJoined} WHERE s.topic_id = ${topic.id} AND s.name = ${name}`);
  return row ? toSubscription(row) : null;
}

export async function subscriptionById(db: Queryable, id: number): Promise<Subscription | null> {
  const [row] = await rows<RawSubscription>(db, sql`${selectJoined} WHERE s.id = ${id}`);
  return row ? toSubscription(row) : null;
}

/** The subscription and how many of its deliveries are in flight (leased, not yet settled). */
export async function subscriptionForClaim(
  db: Queryable,
  id: number,
  now: number,
): Promise<{ subscription: Subscription; inFlight: number } | null> {
  const [row] = await rows<RawSubscription & { in_flight: number }>(
    db,
    sql`SELECT ${joinedColumns}, f.in_flight FROM ${joinedTables}
        CROSS JOIN LATERAL (
          SELECT COALESCE(sum(l.last_offset - l.first_offset + 1 - cardinality(l.settled)), 0)::bigint AS in_flight FROM group_leases l
          WHERE l.group_id = s.group_id AND l.visible_at > ${now} AND l.attempt > 0 AND l.receiver IS NOT NULL) f
        WHERE s.id = ${id}`,
  );
  return row ? { subscription: toSubscription(row), inFlight: row.in_flight } : null;
}

/**
 * Active subscriptions of the given topics (all when omitted) with messages to deliver: some
 * never delivered, or some due again. Fairly rotated.
 */
export async function subscriptionsWithWork(db: Queryable, now: number, topicIds?: number[], limit = 1000): Promise<number[]> {
  const topics = topicIds ? sql`AND s.topic_id = ANY(${sqlArray(topicIds, "bigint")})` : sql``;
  const found = await rows<{ id: number }>(
    db,
    sql`SELECT s.id FROM subscriptions s
        WHERE s.state = 'active' ${topics} AND (
          EXISTS (SELECT 1 FROM group_partitions gp JOIN partitions p ON p.topic_id = s.topic_id AND p.partition = gp.partition
                  WHERE gp.group_id = s.group_id AND gp.frontier < p.next_offset)
          OR EXISTS (SELECT 1 FROM group_leases l WHERE l.group_id = s.group_id AND l.visible_at <= ${now}
                     AND cardinality(l.settled) < l.last_offset - l.first_offset + 1))
        ORDER BY random() LIMIT ${limit}`,
  );
  return found.map((r) => r.id);
}

/**
 * Creates the subscription and its group (`created`), or updates the settings given. The
 * secret is only used on creation.
 */
export async function saveSubscription(
  db: Database,
  tenantId: string,
  topic: Topic,
  name: string,
  given: Partial<SubscriptionSettings> & { url: string },
  secret: string,
  now: number,
): Promise<{ subscription: Subscription; created: boolean }> {
  return db.transaction(async (tx) => {
    await holdTopic(tx, topic);
    const existing = await findSubscription(tx, topic, name);
    if (!existing) {
      const settings = { ...defaultSubscriptionSettings(topic), ...defined(given) } as SubscriptionSettings;
      const { group } = await ensureGroup(tx as unknown as Database, tenantId, topic, groupNameOf(name), {
        startAt: settings.startAt,
        ordering: settings.ordering,
        maxAttempts: settings.maxAttempts,
        deadLetterTopic: settings.deadLetterTopic,
      });
      // A concurrent create of the same name loses here (unique index) and is retried as an update.
      const inserted = await rows<{ id: number }>(
        tx,
        sql`INSERT INTO subscriptions (tenant_id, topic_id, name, group_id, url, format, max_concurrency, timeout_ms,
              backoff_initial_ms, backoff_max_ms, filter_headers, secret, state, created_at)
            VALUES (${tenantId}, ${topic.id}, ${name}, ${group.id}, ${settings.url}, ${settings.format}, ${settings.maxConcurrency},
              ${settings.timeoutMs}, ${settings.backoffInitialMs}, ${settings.backoffMaxMs},
              ${settings.filterHeaders === null ? null : JSON.stringify(settings.filterHeaders)}::jsonb, ${secret}, 'active', ${now})
            ON CONFLICT DO NOTHING RETURNING id`,
      );
      if (inserted.length > 0) return { subscription: (await subscriptionById(tx, inserted[0].id))!, created: true };
    }
    const current = existing ?? (await findSubscription(tx, topic, name))!;
    const g = defined(given);
    await tx.execute(sql`
      UPDATE subscriptions SET
        url = ${g.url ?? current.url}, format = ${g.format ?? current.format},
        max_concurrency = ${g.maxConcurrency ?? current.maxConcurrency}, timeout_ms = ${g.timeoutMs ?? current.timeoutMs},
        backoff_initial_ms = ${g.backoffInitialMs ?? current.backoffInitialMs}, backoff_max_ms = ${g.backoffMaxMs ?? current.backoffMaxMs},
        filter_headers = ${"filterHeaders" in g ? (g.filterHeaders === null ? null : JSON.stringify(g.filterHeaders)) : current.filterHeaders === null ? null : JSON.stringify(current.filterHeaders)}::jsonb
      WHERE id = ${current.id}`);
    // Only the group settings given (an undefined one would overwrite the stored value).
    const groupChanges = defined({ ordering: g.ordering, maxAttempts: g.maxAttempts, deadLetterTopic: g.deadLetterTopic });
    if (Object.keys(groupChanges).length > 0)
      await ensureGroup(tx as unknown as Database, tenantId, topic, groupNameOf(name), groupChanges);
    return { subscription: (await subscriptionById(tx, current.id))!, created: false };
  });
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Deletes the subscription with its group (positions, leases, dead-letter records) and log. */
export async function deleteSubscription(db: Queryable, topic: Topic, name: string): Promise<boolean> {
  const deleted = await rows<{ id: number }>(
    db,
    sql`DELETE FROM consumer_groups WHERE id = (SELECT group_id FROM subscriptions WHERE topic_id = ${topic.id} AND name = ${name}) RETURNING id`,
  );
  return deleted.length > 0;
}

export async function setState(db: Queryable, id: number, state: SubscriptionState, reason: string | null): Promise<void> {
  await db.execute(sql`UPDATE subscriptions SET state = ${state}, state_reason = ${reason} WHERE id = ${id}`);
}

/** A new secret; the old one keeps signing for `graceMs` (none when 0). */
export async function rotateSecret(db: Queryable, id: number, secret: string, graceMs: number, now: number): Promise<void> {
  await db.execute(sql`
    UPDATE subscriptions SET
      previous_secret = CASE WHEN ${graceMs} > 0 THEN secret END,
      previous_secret_expires_at = CASE WHEN ${graceMs} > 0 THEN ${now + graceMs}::bigint END,
      secret = ${secret}, secret_rotated_at = ${now}
    WHERE id = ${id}`);
}
