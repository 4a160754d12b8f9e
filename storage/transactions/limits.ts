/** The limits of transactions (API.md "Transactions"; README "Transactions" documents them). */
export const transactionLimits = {
  /** Messages one transaction may hold. */
  messages: 10_000,
  /** Stored record bytes (key, value, headers and their framing) one transaction may hold: 64 MiB. */
  bytes: 64 * 1024 * 1024,
  /** Open transactions per tenant. */
  openPerTenant: 1_000,
  /** Unknown answers (errors and timeouts included) of check-backs before the rollback. */
  unknownsBeforeRollback: 5,
  /** How long an ended transaction is kept (a repeated commit answers its offsets meanwhile). */
  keepEndedMs: 7 * 24 * 60 * 60 * 1000,
} as const;
