import { BaseError } from "viem";

/** Names of the errors this package throws (stable, for `switch`). */
export type EcldErrorName =
  | "PayloadError"
  | "KeyError"
  | "EnvelopeError"
  | "StoreError"
  | "ChainError"
  | "VerifyError"
  | "TaskError"
  | "DepositError";

/** Parameters of {@link EcldError}. */
export interface EcldErrorParameters {
  /** Longer explanation: the values involved. */
  details?: string;
  /** What the user can do about it; shown as "Hint:" in the message. */
  hint?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * Every error of this package: a short message, details and what to do, in viem's
 * `BaseError` style (`shortMessage`, `details`, `metaMessages`, `walk()`).
 */
export class EcldError extends BaseError {
  override name: EcldErrorName;
  /** What the user can do about it. */
  readonly hint: string | undefined;

  constructor(name: EcldErrorName, shortMessage: string, p: EcldErrorParameters = {}) {
    const metaMessages = [
      ...(p.details === undefined ? [] : [`Details: ${p.details}`]),
      ...(p.hint === undefined ? [] : [`Hint: ${p.hint}`]),
    ];
    super(shortMessage, {
      ...(p.cause instanceof Error ? { cause: p.cause } : {}),
      ...(p.details === undefined ? {} : { details: p.details }),
      metaMessages,
      name,
    });
    this.name = name;
    this.hint = p.hint;
  }
}

/** The message of anything thrown, for `details`. */
export function describe(e: unknown): string {
  if (e instanceof BaseError) return e.shortMessage;
  if (e instanceof Error) return e.message;
  return String(e);
}
