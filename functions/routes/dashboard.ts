/**
 * GET /dashboard (API.md "Operations"): the web dashboard, three static assets built into
 * functions/dashboard/assets.generated.ts (dashboard/build.ts), served by the same app on Node
 * and Workers. No credentials here: the page signs in against the API itself. The Content
 * Security Policy allows nothing but this origin (scripts, styles, fetches), no inline code, no
 * frames, no form submissions: the page loads nothing from elsewhere and sends nowhere else.
 * Not in the OpenAPI document: it is a page, not an API operation.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { dashboardCss, dashboardHtml, dashboardJs } from "../dashboard/assets.generated.ts";
import type { AppEnv } from "../runtime.ts";

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function asset(body: string, contentType: string) {
  return new Response(body, {
    headers: {
      "content-type": contentType,
      "content-security-policy": DASHBOARD_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      // Small, and must change with the server: revalidated every time.
      "cache-control": "no-cache",
    },
  });
}

export function registerDashboard(app: OpenAPIHono<AppEnv>) {
  const page = () => asset(dashboardHtml, "text/html; charset=utf-8");
  app.get("/dashboard", page);
  app.get("/dashboard/", page);
  app.get("/dashboard/app.js", () => asset(dashboardJs, "text/javascript; charset=utf-8"));
  app.get("/dashboard/app.css", () => asset(dashboardCss, "text/css; charset=utf-8"));
}
