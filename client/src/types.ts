/**
 * Names for the shapes of the API, all taken from the types generated from the server's OpenAPI
 * document (generated/openapi.ts): a change to a route's schema changes these, and the SDK's
 * compilation says where it no longer fits.
 */
import type { components, operations } from "./generated/openapi.ts";

type Schemas = components["schemas"];

/** The JSON body of a response or request body object, if it has one. */
type JsonOf<T> = T extends { content: { "application/json": infer B } } ? B : never;
/** The JSON request body of an operation. */
export type RequestBody<K extends keyof operations> = operations[K] extends { requestBody?: infer R } ? JsonOf<NonNullable<R>> : never;
/** The JSON body of an operation's success responses (2xx). */
export type ResponseBody<K extends keyof operations> = {
  [S in keyof operations[K]["responses"]]: S extends 200 | 201 | 202 ? JsonOf<operations[K]["responses"][S]> : never;
}[keyof operations[K]["responses"]];
/** The query parameters of an operation. */
export type QueryOf<K extends keyof operations> = operations[K]["parameters"] extends { query?: infer Q } ? NonNullable<Q> : never;

export type Problem = Schemas["Problem"];
export type MessageIn = Schemas["MessageIn"];
export type Message = Schemas["Message"];
export type ReceivedMessage = Schemas["ReceivedMessage"];
/** A receipt, or a part of a lease receipt's run: what ack, nack and extend take. */
export type ReceiptRef = Schemas["ReceiptRef"];
export type ReadResult = Schemas["ReadResult"];
export type Topic = Schemas["Topic"];
export type TopicDetail = Schemas["TopicDetail"];
export type TopicSettings = Schemas["TopicSettings"];
export type ProduceResponse = Schemas["ProduceResponse"];
export type ProducePendingResponse = Schemas["ProducePendingResponse"];
export type Group = Schemas["Group"];
export type GroupSettings = Schemas["GroupSettings"];
export type GroupView = Schemas["GroupView"];
export type ReceiveRequest = Schemas["ReceiveRequest"];
export type AckResponse = Schemas["AckResponse"];
export type NackResponse = Schemas["NackResponse"];
export type ExtendResponse = Schemas["ExtendResponse"];
export type SeekRequest = Schemas["SeekRequest"];
export type Subscription = Schemas["Subscription"];
export type SubscriptionSettings = Schemas["SubscriptionSettings"];
export type ReplayRequest = Schemas["ReplayRequest"];
export type Deliveries = Schemas["Deliveries"];
export type BeginTransactionRequest = Schemas["BeginTransactionRequest"];
export type BeginTransactionResponse = Schemas["BeginTransactionResponse"];
export type CommitTransactionRequest = Schemas["CommitTransactionRequest"];
export type CommitTransactionResponse = Schemas["CommitTransactionResponse"];
export type Transaction = Schemas["Transaction"];
export type Usage = Schemas["Usage"];
export type UsageRow = Schemas["UsageRow"];
export type CreateTenant = Schemas["CreateTenant"];
export type CreatedTenant = Schemas["CreatedTenant"];
export type Tenant = Schemas["Tenant"];
export type PatchTenant = Schemas["PatchTenant"];
export type CreateKey = Schemas["CreateKey"];
export type CreatedKey = Schemas["CreatedKey"];
export type MaintenanceReport = Schemas["MaintenanceReport"];
export type StorageReport = Schemas["StorageReport"];
/** Where a message landed. */
export type MessageOffset = ProduceResponse["offsets"][number];
