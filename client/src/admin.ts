/** Operator calls (`/v1/admin/*`): tenants, their keys and quotas, usage, storage, maintenance. Needs the operator token. */
import { seg, type Transport } from "./http.ts";
import type {
  CreatedKey,
  CreatedTenant,
  CreateKey,
  CreateTenant,
  MaintenanceReport,
  PatchTenant,
  StorageReport,
  Tenant,
  UsageRow,
} from "./types.ts";

export class Admin {
  constructor(private readonly http: Transport) {}

  readonly tenants = {
    /** A tenant and its first API key (all scopes). */
    create: (tenant: CreateTenant): Promise<CreatedTenant> => this.http.json("POST", "/v1/admin/tenants", { body: tenant }),
    get: (tenantId: string): Promise<Tenant> => this.http.json("GET", `/v1/admin/tenants/${seg(tenantId)}`),
    /** Changes quotas (`null` removes one). */
    update: (tenantId: string, patch: PatchTenant): Promise<Tenant> =>
      this.http.json("PATCH", `/v1/admin/tenants/${seg(tenantId)}`, { body: patch }),
  };

  readonly keys = {
    create: (tenantId: string, key: CreateKey = {}): Promise<CreatedKey> =>
      this.http.json("POST", `/v1/admin/tenants/${seg(tenantId)}/keys`, { body: key }),
    /** The key stops working at once, at every instance. */
    revoke: async (tenantId: string, keyId: string): Promise<void> => {
      await this.http.json("DELETE", `/v1/admin/tenants/${seg(tenantId)}/keys/${seg(keyId)}`);
    },
  };

  /** Hourly usage of one tenant or all, `from` inclusive, `to` exclusive. */
  async usage(opts: { tenant?: string; from?: number; to?: number } = {}): Promise<UsageRow[]> {
    return (await this.http.json<{ usage: UsageRow[] }>("GET", "/v1/admin/usage", { query: { ...opts, format: "json" } })).usage;
  }

  /** The same rows as CSV, with a header row. */
  usageCsv(opts: { tenant?: string; from?: number; to?: number } = {}): Promise<string> {
    return this.http.text("GET", "/v1/admin/usage", { query: { ...opts, format: "csv" } });
  }

  storage(): Promise<StorageReport> {
    return this.http.json("GET", "/v1/admin/storage");
  }

  /** Runs one full storage-lifecycle pass now. */
  maintenance(): Promise<MaintenanceReport> {
    return this.http.json("POST", "/v1/admin/maintenance", { body: {} });
  }
}
