/**
 * SQS's errors, in the shape the AWS SDK's JSON protocol parses for a query-compatible service:
 * a JSON body `{ "__type": "com.amazonaws.sqs#<Shape>", "message" }` and the header
 * `x-amzn-query-error: <QueryCode>;<Sender|Receiver>`. The SDK takes the code from that header
 * and maps it to the modelled exception (QueueDoesNotExist, ReceiptHandleIsInvalid, ...); a
 * code the model lacks (InvalidParameterValue, SignatureDoesNotMatch, ...) becomes an
 * SQSServiceException named by the code. This endpoint's only error family: ReservoirErrors
 * from the storage layer are translated here (fromReservoirError), in one place.
 */
import { ReservoirError } from "../../storage/errors.ts";

interface ErrorShape {
  /** The model's shape name (`__type`), for modelled errors. */
  shape?: string;
  /** The awsQuery error code (the header), when it is not the shape name. */
  query?: string;
  status: number;
  fault: "Sender" | "Receiver";
}

const ns = "com.amazonaws.sqs#";
const coral = "com.amazon.coral.service#";

export const sqsErrors = {
  // Modelled by the SQS service (the SDK throws classes of these names).
  QueueDoesNotExist: { query: "AWS.SimpleQueueService.NonExistentQueue", status: 400, fault: "Sender" },
  QueueNameExists: { query: "QueueAlreadyExists", status: 400, fault: "Sender" },
  ReceiptHandleIsInvalid: { status: 404, fault: "Sender" },
  MessageNotInflight: { query: "AWS.SimpleQueueService.MessageNotInflight", status: 400, fault: "Sender" },
  TooManyEntriesInBatchRequest: { query: "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", status: 400, fault: "Sender" },
  BatchEntryIdsNotDistinct: { query: "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", status: 400, fault: "Sender" },
  EmptyBatchRequest: { query: "AWS.SimpleQueueService.EmptyBatchRequest", status: 400, fault: "Sender" },
  InvalidBatchEntryId: { query: "AWS.SimpleQueueService.InvalidBatchEntryId", status: 400, fault: "Sender" },
  BatchRequestTooLong: { query: "AWS.SimpleQueueService.BatchRequestTooLong", status: 400, fault: "Sender" },
  UnsupportedOperation: { query: "AWS.SimpleQueueService.UnsupportedOperation", status: 400, fault: "Sender" },
  InvalidAttributeName: { status: 400, fault: "Sender" },
  InvalidAttributeValue: { status: 400, fault: "Sender" },
  InvalidMessageContents: { status: 400, fault: "Sender" },
  PurgeQueueInProgress: { query: "AWS.SimpleQueueService.PurgeQueueInProgress", status: 403, fault: "Sender" },
  RequestThrottled: { status: 403, fault: "Sender" },
  OverLimit: { status: 403, fault: "Sender" },
  // Common AWS errors (not in the SQS model).
  InvalidParameterValue: { status: 400, fault: "Sender" },
  MissingParameter: { status: 400, fault: "Sender" },
  InvalidAction: { status: 400, fault: "Sender" },
  AccessDenied: { status: 403, fault: "Sender" },
  MissingAuthenticationToken: { status: 403, fault: "Sender" },
  IncompleteSignature: { status: 403, fault: "Sender" },
  InvalidClientTokenId: { status: 403, fault: "Sender" },
  SignatureDoesNotMatch: { status: 403, fault: "Sender" },
  RequestExpired: { status: 403, fault: "Sender" },
  SerializationException: { status: 400, fault: "Sender" },
  ServiceUnavailable: { status: 503, fault: "Receiver" },
  InternalFailure: { status: 500, fault: "Receiver" },
} satisfies Record<string, ErrorShape>;

export type SqsErrorCode = keyof typeof sqsErrors;

const modelled = new Set<string>([
  "QueueDoesNotExist",
  "QueueNameExists",
  "ReceiptHandleIsInvalid",
  "MessageNotInflight",
  "TooManyEntriesInBatchRequest",
  "BatchEntryIdsNotDistinct",
  "EmptyBatchRequest",
  "InvalidBatchEntryId",
  "BatchRequestTooLong",
  "UnsupportedOperation",
  "InvalidAttributeName",
  "InvalidAttributeValue",
  "InvalidMessageContents",
  "PurgeQueueInProgress",
  "RequestThrottled",
  "OverLimit",
]);

export class SqsError extends Error {
  constructor(
    readonly code: SqsErrorCode,
    message: string,
    /** Extra response headers (Retry-After on throttling). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "SqsError";
  }
}

/** The code batch entries' `Failed` items carry, and whether it is the sender's fault. */
export function failedEntry(id: string, code: SqsErrorCode, message: string) {
  const shape: ErrorShape = sqsErrors[code];
  return { Id: id, Code: shape.query ?? code, Message: message, SenderFault: shape.fault === "Sender" };
}

export function sqsErrorResponse(error: SqsError): Response {
  const shape: ErrorShape = sqsErrors[error.code];
  const body = { __type: `${modelled.has(error.code) ? ns : coral}${error.code}`, message: error.message };
  return new Response(JSON.stringify(body), {
    status: shape.status,
    headers: {
      "content-type": "application/x-amz-json-1.0",
      "x-amzn-query-error": `${shape.query ?? error.code};${shape.fault}`,
      ...error.headers,
    },
  });
}

/** A refusal of the storage layer, told in SQS's terms; anything else stays a failure (5xx). */
export function fromReservoirError(error: unknown): SqsError {
  if (error instanceof SqsError) return error;
  if (!(error instanceof ReservoirError)) {
    return new SqsError("InternalFailure", "The request processing has failed because of an unknown error");
  }
  switch (error.code) {
    case "topic_not_found":
      return new SqsError("QueueDoesNotExist", "The specified queue does not exist.");
    case "quota_exceeded": {
      const retry = (error.extra as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
      return new SqsError("RequestThrottled", error.message, retry ? { "retry-after": String(retry) } : {});
    }
    case "insufficient_scope":
      return new SqsError("AccessDenied", error.message);
    case "message_too_large":
    case "body_too_large":
      return new SqsError("InvalidParameterValue", error.message);
    case "service_unavailable":
    case "deadline_exceeded":
    case "request_timeout":
      return new SqsError("ServiceUnavailable", error.message);
    default:
      return new SqsError("InvalidParameterValue", error.message);
  }
}
