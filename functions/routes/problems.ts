/** The documentation of each problem `code`, where a problem's `type` URI points (/problems/{code}). */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { errorCodeNames, ReservoirError, type ErrorCode } from "../../storage/errors.ts";
import { problemTypes, problemTypeUri, titleOf } from "../problem.ts";
import type { AppEnv } from "../runtime.ts";
import { problemContent } from "../schemas.ts";

const ProblemTypeDoc = z
  .object({ type: z.string(), code: z.string(), status: z.number().int(), title: z.string(), description: z.string() })
  .openapi("ProblemType");

const listRoute = createRoute({
  method: "get",
  path: "/problems",
  operationId: "listProblemTypes",
  security: [],
  summary: "Every problem code this service answers with, its status and meaning",
  responses: {
    200: { description: "The codes", content: { "application/json": { schema: z.object({ problems: z.array(ProblemTypeDoc) }) } } },
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/problems/{code}",
  operationId: "getProblemType",
  security: [],
  summary: "What a problem code means (the target of a problem's `type`)",
  request: {
    params: z.object({ code: z.string().openapi({ param: { name: "code", in: "path", required: true }, example: "topic_not_found" }) }),
  },
  responses: {
    200: { description: "The code's documentation", content: { "application/json": { schema: ProblemTypeDoc } } },
    404: { description: "No such code", content: problemContent },
  },
});

const isCode = (code: string): code is ErrorCode => (errorCodeNames as readonly string[]).includes(code);
const doc = (code: ErrorCode) => ({
  type: problemTypeUri(code),
  code,
  status: problemTypes[code].status,
  title: titleOf(code),
  description: problemTypes[code].description,
});

export function registerProblems(app: OpenAPIHono<AppEnv>) {
  app.openapi(listRoute, (c) => c.json({ problems: errorCodeNames.map(doc) }, 200));
  app.openapi(getRoute, (c) => {
    const { code } = c.req.valid("param");
    if (!isCode(code)) throw new ReservoirError("not_found", `no problem code '${code}'`);
    return c.json(doc(code), 200);
  });
}
