import { type Address, getAddress, hexToBytes, bytesToHex, isAddress } from "viem";
import { EcldError } from "./errors.js";

/** The four bytes every payload starts with: `ECLP`. */
export const PAYLOAD_MAGIC = new Uint8Array([0x45, 0x43, 0x4c, 0x50]);
/** The payload format this package writes and reads. */
export const PAYLOAD_FORMAT_VERSION = 1;
/** Longest recipient string accepted. */
export const MAX_RECIPIENT_LEN = 128;
/** Largest user-supplied code accepted: 32 MiB. */
export const MAX_CODE_LEN = 32 * 1024 * 1024;
/** Largest program input accepted: 256 MiB. */
export const MAX_INPUT_LEN = 256 * 1024 * 1024;

/** A task input payload (docs/protocol.md; `ecld_crypto::Payload`). */
export interface Payload {
  /** The account that submits the task. */
  requester: Address;
  /** The requester's age X25519 recipient (`age1…`); the result is encrypted to it. */
  recipient: string;
  /** Code for a runner image; `undefined` when the image runs its own program. */
  code?: Uint8Array | undefined;
  /** The program's input (its stdin). */
  input: Uint8Array;
}

const RECIPIENT_RE = /^age1[02-9ac-hj-np-z]{58}$/;

function payloadError(msg: string, details?: string): EcldError {
  return new EcldError("PayloadError", msg, {
    ...(details === undefined ? {} : { details }),
    hint: "build the payload with encodePayload from this package or `ecld payload build`",
  });
}

/** A payload without its input bytes: the fields that come before the input, and its length. */
export interface PayloadHeader {
  /** The account that submits the task. */
  requester: Address;
  /** The requester's age X25519 recipient (`age1…`). */
  recipient: string;
  /** Code for a runner image; `undefined` when the image runs its own program. */
  code?: Uint8Array | undefined;
  /** The length of the input that follows the header, in bytes. */
  inputLength: number;
}

function validateHeader(p: PayloadHeader): void {
  if (!isAddress(p.requester, { strict: false }))
    throw payloadError(`payload requester ${p.requester} is not an address`);
  if (p.recipient.length === 0 || p.recipient.length > MAX_RECIPIENT_LEN || !RECIPIENT_RE.test(p.recipient))
    throw payloadError(`payload recipient is not an age X25519 recipient (age1…): ${p.recipient}`);
  if (p.code !== undefined && p.code.length > MAX_CODE_LEN)
    throw payloadError(`payload code is ${p.code.length} bytes, over the maximum of ${MAX_CODE_LEN}`);
  if (!Number.isSafeInteger(p.inputLength) || p.inputLength < 0 || p.inputLength > MAX_INPUT_LEN)
    throw payloadError(`payload input is ${p.inputLength} bytes, over the maximum of ${MAX_INPUT_LEN}`);
}

/** Checks the limits {@link decodePayload} enforces; throws an `EcldError` otherwise. */
export function validatePayload(p: Payload): void {
  validateHeader({ requester: p.requester, recipient: p.recipient, code: p.code, inputLength: p.input.length });
}

/**
 * The bytes of a payload before its input (magic, version, requester, recipient, code, input
 * length): {@link encodePayload} is this followed by the input.
 */
export function encodePayloadHeader(p: PayloadHeader): Uint8Array {
  validateHeader(p);
  const recipient = new TextEncoder().encode(p.recipient);
  const codeLen = p.code === undefined ? 0 : 4 + p.code.length;
  const out = new Uint8Array(4 + 1 + 20 + 2 + recipient.length + 1 + codeLen + 4);
  const view = new DataView(out.buffer);
  let o = 0;
  out.set(PAYLOAD_MAGIC, o);
  o += 4;
  out[o++] = PAYLOAD_FORMAT_VERSION;
  out.set(hexToBytes(p.requester), o);
  o += 20;
  view.setUint16(o, recipient.length);
  o += 2;
  out.set(recipient, o);
  o += recipient.length;
  if (p.code === undefined) {
    out[o++] = 0;
  } else {
    out[o++] = 1;
    view.setUint32(o, p.code.length);
    o += 4;
    out.set(p.code, o);
    o += p.code.length;
  }
  view.setUint32(o, p.inputLength);
  return out;
}

/** The binary encoding of a payload, byte for byte what `ecld_crypto::Payload::encode` writes. */
export function encodePayload(p: Payload): Uint8Array {
  const header = encodePayloadHeader({ requester: p.requester, recipient: p.recipient, code: p.code, inputLength: p.input.length });
  const out = new Uint8Array(header.length + p.input.length);
  out.set(header);
  out.set(p.input, header.length);
  return out;
}

/**
 * A payload as a stream: the header, then the input's chunks as they come, so a large input
 * (a `File.stream()`) is never whole in memory. The input length goes in the header first,
 * so it is needed up front (`File.size`); the stream fails if the input delivers another
 * number of bytes. `length` is the payload's length in bytes.
 */
export function payloadStream(
  p: PayloadHeader,
  input: ReadableStream<Uint8Array>,
): { stream: ReadableStream<Uint8Array>; length: number } {
  const header = encodePayloadHeader(p);
  const reader = input.getReader();
  let headerSent = false;
  let seen = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(header);
        return;
      }
      // Loops over empty chunks: a pull that enqueues nothing is not called again.
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          if (seen !== p.inputLength)
            controller.error(payloadError(`the input ended after ${seen} bytes, ${p.inputLength} were announced`, "was the file changed while it was read?"));
          else controller.close();
          return;
        }
        seen += value.length;
        if (seen > p.inputLength) {
          controller.error(payloadError(`the input is longer than the ${p.inputLength} bytes announced`, "was the file changed while it was read?"));
          await reader.cancel().catch(() => undefined);
          return;
        }
        if (value.length > 0) {
          controller.enqueue(value);
          return;
        }
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  return { stream, length: header.length + p.inputLength };
}

/** Parses a payload, refusing anything `ecld_crypto::Payload::decode` refuses. */
export function decodePayload(bytes: Uint8Array): Payload {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (field: string, n: number): void => {
    if (bytes.length - o < n)
      throw payloadError(
        `payload truncated in the ${field} field: ${n} more bytes needed, ${bytes.length - o} present`,
      );
  };
  need("magic", 4);
  if (!PAYLOAD_MAGIC.every((b, i) => bytes[i] === b))
    throw payloadError('not an ecld payload: it does not start with the magic bytes "ECLP"; was it decrypted?');
  o = 4;
  need("version", 1);
  const version = bytes[o++];
  if (version !== PAYLOAD_FORMAT_VERSION)
    throw payloadError(`payload format version ${version} is not supported (this build reads version 1)`);
  need("requester", 20);
  const requester = getAddress(bytesToHex(bytes.subarray(o, o + 20)));
  o += 20;
  need("recipient", 2);
  const rlen = view.getUint16(o);
  o += 2;
  if (rlen > MAX_RECIPIENT_LEN)
    throw payloadError(`payload recipient is ${rlen} bytes, over the maximum of ${MAX_RECIPIENT_LEN}`);
  need("recipient", rlen);
  const recipient = new TextDecoder().decode(bytes.subarray(o, o + rlen));
  o += rlen;
  need("code flag", 1);
  const flag = bytes[o++];
  let code: Uint8Array | undefined;
  if (flag === 1) {
    need("code", 4);
    const clen = view.getUint32(o);
    o += 4;
    if (clen > MAX_CODE_LEN) throw payloadError(`payload code is ${clen} bytes, over the maximum of ${MAX_CODE_LEN}`);
    need("code", clen);
    code = bytes.slice(o, o + clen);
    o += clen;
  } else if (flag !== 0) {
    throw payloadError(`payload code flag is ${flag}; only 0 (no code) and 1 (code follows) are defined`);
  }
  need("input", 4);
  const ilen = view.getUint32(o);
  o += 4;
  if (ilen > MAX_INPUT_LEN) throw payloadError(`payload input is ${ilen} bytes, over the maximum of ${MAX_INPUT_LEN}`);
  need("input", ilen);
  const input = bytes.slice(o, o + ilen);
  o += ilen;
  if (o !== bytes.length)
    throw payloadError(`payload has ${bytes.length - o} unexpected bytes after the input; the payload is corrupted`);
  const p: Payload = { requester, recipient, code, input };
  validatePayload(p);
  return p;
}
