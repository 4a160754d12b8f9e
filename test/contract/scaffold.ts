// What a contract suite with one main tenant sets up: its target (started once, stopped after),
// the operator's client, a tenant, names unique within the run, and the target's output shown
// for a failing test. The suite keeps its own variables (set through `started`), so that its
// tests read `tenant.client` and `admin` as before.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { api, assertStatus, type Api } from "../support/http.ts";
import { showServerOutputOnFailure, type ContractTarget } from "./contract.ts";

export interface Tenant {
  tenantId: string;
  apiKey: string;
  client: Api;
}

export function contractScaffold(
  name: string,
  startTarget: () => Promise<ContractTarget>,
  tenantPrefix: string,
  started: (s: { target: ContractTarget; admin: Api; tenant: Tenant }) => void,
) {
  let target: ContractTarget | undefined;
  let admin: Api;
  let seq = 0;
  const runId = randomBytes(3).toString("hex");

  /** A name unique within this run. */
  const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

  async function newTenant(prefix: string): Promise<Tenant> {
    const res = await admin.post("/v1/admin/tenants", { name: uniq(prefix) });
    assertStatus(res, 201);
    return { tenantId: res.body.tenantId, apiKey: res.body.apiKey, client: api(target!.baseUrl, res.body.apiKey) };
  }

  beforeAll(async () => {
    target = await startTarget();
    admin = api(target.baseUrl, target.adminToken);
    started({ target, admin, tenant: await newTenant(tenantPrefix) });
  }, 180_000);

  afterAll(async () => {
    await target?.stop();
  }, 60_000);

  showServerOutputOnFailure(name, () => target);
  return { uniq, newTenant };
}
