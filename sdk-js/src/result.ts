import { EcldError } from "./errors.js";

/** The decrypted result of a task (docs/protocol.md, "Result envelope"). */
export interface ResultEnvelope {
  /** The status signed in the proof. */
  status: number;
  /** The program's exit code; -1 if it did not exit. */
  exitCode: number;
  /** The program's output. */
  stdout: Uint8Array;
  /** Diagnostics. */
  stderr: Uint8Array;
}

const MAGIC = "ecldres1";

/** Parses a result envelope, refusing trailing bytes. */
export function decodeResultEnvelope(bytes: Uint8Array): ResultEnvelope {
  const bad = (msg: string): EcldError =>
    new EcldError("EnvelopeError", `not a valid result envelope: ${msg}`, {
      hint: "the result was not written by an ecld enclave; do not trust it",
    });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 18 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) throw bad("bad magic or too short");
  const status = view.getUint16(8);
  const exitCode = view.getInt32(10);
  let o = 14;
  const take = (what: string): Uint8Array => {
    if (bytes.length - o < 4) throw bad(`truncated ${what} length`);
    const n = view.getUint32(o);
    o += 4;
    if (bytes.length - o < n) throw bad(`truncated ${what}`);
    const v = bytes.slice(o, o + n);
    o += n;
    return v;
  };
  const stdout = take("stdout");
  const stderr = take("stderr");
  if (o !== bytes.length) throw bad(`${bytes.length - o} trailing bytes`);
  return { status, exitCode, stdout, stderr };
}
