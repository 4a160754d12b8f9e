// The dashboard (GET /dashboard) end to end in headless Chromium against the Node server
// (embedded): sign-in with a tenant key and with the operator token, topics with high
// watermarks and throughput, a group with lag, in-flight and dead letters and its redrive,
// a subscription's deliveries and failures, the message browser by offset and by time, usage
// charts by hour. Driven by the keyboard where a person would (focus, Enter, Tab); every
// request the page makes must stay on the server's origin, and the console must stay clean
// (a CSP violation is a console error). Screenshots: test-artifacts/dashboard/.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_CSP } from "../../functions/routes/dashboard.ts";
import { launchChromium, type Browser } from "../support/chromium.ts";
import { api, assertStatus, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";

describe("the dashboard in headless Chromium, on the Node server (embedded)", () => {
  let server: NodeServer;
  let sink: WebhookSink;
  let browser: Browser;
  let admin: Api;
  let client: Api;
  let tenant: { tenantId: string; apiKey: string; name: string };
  const foreignRequests: string[] = [];
  const consoleErrors: string[] = [];
  const produced: { partition: number; offset: number; at: number }[] = [];

  beforeAll(async () => {
    sink = await startWebhookSink();
    // Messages whose value starts with "bad" fail (500); with maxAttempts 1 they are dead-lettered at once.
    sink.on("/hook", (r) => ({ status: String(r.json?.value ?? "").startsWith("bad") ? 500 : 200 }));
    server = await startNodeServer({
      label: "dashboard",
      env: { RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" },
    });
    admin = api(server.baseUrl, server.adminToken);
    const created = await admin.post("/v1/admin/tenants", { name: "acme-dashboard" });
    assertStatus(created, 201);
    tenant = { ...created.body, name: "acme-dashboard" };
    client = api(server.baseUrl, tenant.apiKey);
    assertStatus(await client.put("/v1/topics/orders", { partitions: 2 }), 201);
    assertStatus(await client.put("/v1/topics/orders/groups/billing", { startAt: "earliest", maxAttempts: 1 }), 201);
    assertStatus(
      await client.put("/v1/topics/orders/subscriptions/hook", { url: sink.url("/hook"), maxAttempts: 1, startAt: "earliest" }),
      201,
    );
    for (let i = 1; i <= 6; i++) {
      const value = i === 6 ? "bad-order-6" : `order-${i}`;
      const res = await client.post("/v1/topics/orders/messages", {
        messages: [{ value, key: `customer-${i % 3}`, partition: i % 2, headers: { source: "shop" } }],
      });
      assertStatus(res, 200);
      produced.push({ ...res.body.offsets[0], at: Date.now() });
    }
    await sink.waitForCount("/hook", 6, 30_000);
    // One message received, nacked and (maxAttempts 1) dead-lettered by the next receive; two left in flight.
    const first = await client.post("/v1/topics/orders/groups/billing/receive", { max: 1 });
    assertStatus(first, 200);
    assertStatus(await client.post("/v1/topics/orders/groups/billing/nack", { receipts: [first.body.messages[0].receipt] }), 200);
    assertStatus(await client.post("/v1/topics/orders/groups/billing/receive", { max: 2, visibilityTimeoutSeconds: 600 }), 200);
    const group = await client.get("/v1/topics/orders/groups/billing");
    expect(group.body.deadLettered).toBe(1);

    browser = await launchChromium("dashboard");
    const origin = new URL(server.baseUrl).origin;
    browser.page.on("request", (request) => {
      if (!request.url().startsWith(origin) && !request.url().startsWith("data:")) foreignRequests.push(request.url());
    });
    browser.page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    browser.page.on("pageerror", (error) => consoleErrors.push(String(error)));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await sink?.close();
  }, 60_000);

  const page = () => browser.page;
  /** The row of `table` whose first cell is exactly `first`. */
  const row = (table: string, first: string) =>
    page()
      .locator("table", { has: page().locator("caption", { hasText: table }) })
      .locator("tr", { has: page().locator("td:first-child").getByText(first, { exact: true }) });
  const cell = (table: string, first: string, column: number) => row(table, first).locator("td").nth(column);

  it("serves the page, its script and its style with a strict Content-Security-Policy", async () => {
    for (const path of ["/dashboard", "/dashboard/app.js", "/dashboard/app.css"]) {
      const res = await fetch(server.baseUrl + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-security-policy"), path).toBe(DASHBOARD_CSP);
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
    }
    expect(DASHBOARD_CSP).toContain("default-src 'none'");
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
  });

  it("signs in with a tenant API key from the keyboard and lists the topics with high watermarks", async () => {
    await page().goto(`${server.baseUrl}/dashboard`);
    const token = page().getByLabel("API key or operator token");
    await token.waitFor();
    // The field has the focus on arrival: type and press Enter, no mouse.
    expect(await token.evaluate((el) => el === document.activeElement)).toBe(true);
    await page().keyboard.type("rsv_not_a_key");
    await page().keyboard.press("Enter");
    await page().getByRole("status").filter({ hasText: "not accepted" }).waitFor();
    await token.fill("");
    await page().keyboard.type(tenant.apiKey);
    await page().keyboard.press("Enter");
    await page().getByRole("heading", { name: "Topics" }).waitFor();
    expect(await cell("Topics", "orders", 2).textContent()).toBe("6");
    expect(await cell("Topics", "orders", 3).textContent()).toBe("3, 3");
    await browser.screenshot("01-topics");
  });

  it("measures a topic's throughput between two looks", async () => {
    for (let i = 0; i < 4; i++) assertStatus(await client.post("/v1/topics/orders/messages", { messages: [{ value: `more-${i}` }] }), 200);
    // The view refreshes itself every 5 s; the rate is the watermarks' rise over the time between looks.
    await row("Topics", "orders")
      .locator("td", { hasText: /\d msg\/s$/ })
      .waitFor({ timeout: 20_000 });
    const rate = Number((await cell("Topics", "orders", 4).textContent())!.replace(" msg/s", ""));
    expect(rate).toBeGreaterThan(0);
    expect(await cell("Topics", "orders", 2).textContent()).toBe("10");
  });

  it("shows a group's lag, in-flight and dead letters, and redrives them with the keyboard", async () => {
    const link = page().getByRole("link", { name: "orders", exact: true });
    await link.focus();
    await page().keyboard.press("Enter");
    await page().getByRole("heading", { name: "Topic orders" }).waitFor();
    expect(await cell("Consumer groups", "billing", 1).textContent()).toBe("9"); // 10 produced, 1 dead-lettered and committed
    expect(await cell("Consumer groups", "billing", 2).textContent()).toBe("2");
    expect(await cell("Consumer groups", "billing", 4).textContent()).toBe("1 in orders.dlq");
    expect(await cell("Webhook subscriptions", "hook", 2).textContent()).toBe("active");
    const redrive = page().getByRole("button", { name: "Redrive the dead letters of billing" });
    await redrive.focus();
    // Focus is visible: the outline the stylesheet gives :focus-visible.
    expect(await redrive.evaluate((el) => getComputedStyle(el).outlineStyle)).toBe("solid");
    await browser.screenshot("02-topic");
    await page().keyboard.press("Enter");
    await page().getByRole("status").filter({ hasText: "Redrove 1 dead letter of billing to orders." }).waitFor();
    expect(await cell("Consumer groups", "billing", 4).textContent()).toBe("0 in orders.dlq");
    const group = await client.get("/v1/topics/orders/groups/billing");
    expect(group.body.deadLettered).toBe(0);
  });

  it("lists a subscription's recent deliveries with the failures", async () => {
    await page().getByRole("link", { name: "hook", exact: true }).click();
    await page().getByRole("heading", { name: "Subscription hook of orders" }).waitFor();
    // The skip link takes the keyboard to the content and stays on the view.
    const view = await page().evaluate(() => location.hash);
    await page().getByRole("link", { name: "Skip to content" }).focus();
    await page().keyboard.press("Enter");
    expect(await page().evaluate(() => [document.activeElement?.id, location.hash])).toEqual(["main", view]);
    const failed = page().locator("tr", { hasText: "failed" });
    expect(await failed.count()).toBeGreaterThanOrEqual(1);
    expect(await failed.first().locator("td").nth(5).textContent()).toBe("500");
    expect(await page().locator("tr", { hasText: "succeeded" }).count()).toBeGreaterThanOrEqual(5);
    await browser.screenshot("03-deliveries");
  });

  it("browses messages by partition and offset, and by time", async () => {
    await page().goto(`${server.baseUrl}/dashboard#/browse/orders`);
    await page().getByRole("heading", { name: "Messages of orders" }).waitFor();
    await page().getByLabel("Partition", { exact: true }).selectOption("1");
    await page().getByLabel("Offset", { exact: true }).fill("1");
    await page().keyboard.press("Enter");
    await page().getByRole("table").filter({ hasText: "Partition 1 from offset 1" }).waitFor();
    const values = await page().locator("tbody tr td:nth-child(5)").allTextContents();
    expect(values[0]).toBe("order-3");
    expect(await page().locator("tbody tr td:nth-child(3)").first().textContent()).toBe("customer-0");
    expect(await page().locator("tbody tr td:nth-child(4)").first().textContent()).toBe("source: shop");
    await browser.screenshot("04-browse-offset");

    // By time: from the fifth produce's time (its message is at partition 1... or 0; the view reads partition 1).
    const at = new Date(produced[4].at - 1000).toISOString().slice(0, 19);
    await page().getByLabel("From time (UTC)").fill(at);
    await page().getByRole("button", { name: "Find" }).press("Enter");
    const expected = await client.get("/v1/topics/orders/offsets", { query: { timestamp: Date.parse(`${at}Z`) } });
    const offset = expected.body.offsets.find((o: { partition: number }) => o.partition === 1).offset;
    await page()
      .getByRole("table")
      .filter({ hasText: `Partition 1 from offset ${offset}` })
      .waitFor();
    await browser.screenshot("05-browse-time");
  });

  it("charts the tenant's usage by hour", async () => {
    await page().getByRole("link", { name: "Usage" }).click();
    await page()
      .getByRole("heading", { name: /^Usage by hour/ })
      .waitFor();
    const caption = await page().locator("figcaption", { hasText: "Messages in" }).textContent();
    expect(caption).toBe("Messages in — total 10");
    const bars = page().locator("figure", { hasText: "Messages in" }).locator("rect.bar");
    expect(await bars.count()).toBe(48);
    const heights = await bars.evaluateAll((rects) => rects.map((r) => Number(r.getAttribute("height"))));
    expect(heights.filter((x) => x > 0).length).toBeGreaterThanOrEqual(1);
    await browser.screenshot("06-usage");
  });

  it("signs the operator in to every tenant: tenants, then one tenant's topics, read-only", async () => {
    await page().getByRole("button", { name: "Sign out" }).click();
    await page().getByLabel("API key or operator token").fill(server.adminToken);
    await page().keyboard.press("Enter");
    await page().getByRole("heading", { name: "Tenants" }).waitFor();
    await browser.screenshot("07-tenants");
    await page().getByRole("button", { name: "Open tenant acme-dashboard" }).press("Enter");
    await page().getByRole("heading", { name: "Topics" }).waitFor();
    // 10 produced, and the redriven dead letter appended again (by reference).
    expect(await cell("Topics", "orders", 2).textContent()).toBe("11");
    await page().getByRole("link", { name: "orders", exact: true }).click();
    await page().getByRole("heading", { name: "Topic orders" }).waitFor();
    expect(await page().getByRole("button", { name: "Redrive the dead letters of billing" }).isDisabled()).toBe(true);
    await browser.screenshot("08-operator-topic");
  });

  it("made no request outside the server's origin and logged no console error", () => {
    expect(foreignRequests).toEqual([]);
    // Chromium logs every refused fetch; the sign-in's refusals (a wrong key, a key probing the
    // operator routes) are the page working as meant. Anything else (a CSP violation, a script error, a 404) is not.
    const unexpected = consoleErrors.filter((e) => !/status of 401 \(Unauthorized\)/.test(e));
    expect(unexpected).toEqual([]);
    expect(consoleErrors.length).toBeGreaterThan(0);
  });
});
