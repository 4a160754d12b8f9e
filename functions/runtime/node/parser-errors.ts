/**
 * Requests that never reach the app, answered problem+json like every other refusal instead of
 * Node's empty-bodied 400s.
 */
import { RequestError } from "@hono/node-server";
import { STATUS_CODES, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorCode } from "../../../storage/errors.ts";
import { problemBody, problemHeaders, problemResponse } from "../../problem.ts";

/**
 * A request @hono/node-server cannot turn into a web Request (a Host that is no host, a
 * backslash in the path, an absolute URL it refuses): a 400 problem, like every other refusal.
 */
export function requestError(error: unknown): Response {
  if (error instanceof RequestError) return problemResponse("invalid_request", `the request is malformed: ${error.message}`);
  console.error(`request failed before the app: ${error instanceof Error ? error.message : String(error)}`);
  return problemResponse("internal_error", "the service failed; the request may be retried");
}

/**
 * What Node's HTTP parser refuses never reaches the app (an unknown method, a raw non-ASCII
 * byte in the request line, headers too large, an Expect other than 100-continue). Node would
 * answer with an empty body; these hooks answer problem+json, then close the connection.
 */
export function answerParserErrors(server: Server): void {
  server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) return socket.destroy();
    const [code, detail]: [ErrorCode, string] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? ["headers_too_large", "the request's headers are too large"]
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? ["request_timeout", "the request did not arrive in time"]
          : ["invalid_request", `the request is not valid HTTP/1.1 (${error.code ?? "parse error"})`];
    const body = JSON.stringify(problemBody(code, detail));
    const status = problemBody(code, detail).status;
    const head = Object.entries({ ...problemHeaders(code), "content-length": String(Buffer.byteLength(body)), connection: "close" })
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n${body}`);
  });
  server.on("checkExpectation", (_request, response) => {
    const body = JSON.stringify(problemBody("expectation_failed", "only Expect: 100-continue is supported"));
    response.writeHead(417, { ...problemHeaders("expectation_failed"), "content-length": Buffer.byteLength(body) }).end(body);
  });
}
