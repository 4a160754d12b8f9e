/** Reading an action's JSON input: missing and mistyped members are SQS's errors, never 5xx. */
import { SqsError } from "./errors.ts";

export type Input = Record<string, unknown>;

export function optionalString(input: Input, name: string): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new SqsError("InvalidParameterValue", `${name} must be a string`);
  return value;
}

export function requiredString(input: Input, name: string): string {
  const value = optionalString(input, name);
  if (value === undefined) throw new SqsError("MissingParameter", `The request must contain the parameter ${name}.`);
  return value;
}

/** An integer within [min, max]; SQS's JSON carries them as numbers. */
export function optionalInt(input: Input, name: string, min: number, max: number): number | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new SqsError(
      "InvalidParameterValue",
      `Value ${JSON.stringify(value)} for parameter ${name} is invalid. Reason: must be an integer from ${min} to ${max}.`,
    );
  }
  return value;
}

export function requiredInt(input: Input, name: string, min: number, max: number): number {
  const value = optionalInt(input, name, min, max);
  if (value === undefined) throw new SqsError("MissingParameter", `The request must contain the parameter ${name}.`);
  return value;
}

export function optionalStringList(input: Input, name: string): string[] | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new SqsError("InvalidParameterValue", `${name} must be a list of strings`);
  }
  return value as string[];
}

export function optionalStringMap(input: Input, name: string): Record<string, string> | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw new SqsError("InvalidParameterValue", `${name} must be a map of strings to strings`);
  }
  return value as Record<string, string>;
}

export function optionalObject(input: Input, name: string): Input | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw new SqsError("InvalidParameterValue", `${name} must be an object`);
  return value as Input;
}

export function optionalList(input: Input, name: string): Input[] | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "object" || v === null || Array.isArray(v))) {
    throw new SqsError("InvalidParameterValue", `${name} must be a list of objects`);
  }
  return value as Input[];
}

/**
 * The entries of a batch call: 1 to 10, each with a distinct Id of 1 to 80 characters of
 * [A-Za-z0-9_-] (SQS's rules, checked in SQS's order).
 */
export function batchEntries(input: Input, name: string): Input[] {
  const entries = optionalList(input, name) ?? [];
  if (entries.length === 0) throw new SqsError("EmptyBatchRequest", "There should be at least one entry in the request.");
  if (entries.length > 10) {
    throw new SqsError("TooManyEntriesInBatchRequest", `Maximum number of entries per request are 10. You have sent ${entries.length}.`);
  }
  const ids = new Set<string>();
  for (const entry of entries) {
    const id = entry.Id;
    if (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,80}$/.test(id)) {
      throw new SqsError(
        "InvalidBatchEntryId",
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
      );
    }
    if (ids.has(id)) throw new SqsError("BatchEntryIdsNotDistinct", `Id ${id} repeated.`);
    ids.add(id);
  }
  return entries;
}
