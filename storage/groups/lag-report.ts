/**
 * Consumer lag across every tenant, for the metrics scrape (GET /metrics): per group, the high
 * watermark minus the committed offset summed over its partitions. One statement, answering at
 * most `limit` rows (the largest lags), so a scrape costs one bounded answer however many
 * groups exist. Subscriptions' groups (`subscription:<name>`) are included.
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";

export interface GroupLag {
  tenantId: string;
  topic: string;
  group: string;
  lag: number;
}

export async function largestLags(db: Queryable, limit: number): Promise<GroupLag[]> {
  const found = await rows<{ tenant_id: string; topic: string; group_name: string; lag: number }>(
    db,
    sql`SELECT t.tenant_id, t.name AS topic, g.name AS group_name,
          sum(GREATEST(p.next_offset - gp.committed, 0))::bigint AS lag
        FROM consumer_groups g
        JOIN topics t ON t.id = g.topic_id
        JOIN group_partitions gp ON gp.group_id = g.id
        JOIN partitions p ON p.topic_id = g.topic_id AND p.partition = gp.partition
        GROUP BY t.tenant_id, t.name, g.name
        ORDER BY lag DESC, t.tenant_id, t.name, g.name
        LIMIT ${limit}`,
  );
  return found.map((r) => ({ tenantId: r.tenant_id, topic: r.topic, group: r.group_name, lag: r.lag }));
}
