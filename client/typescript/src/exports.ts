import { fromBase64, toBase64 } from "./bytes.js";
import { leafHash } from "./verify.js";

export { fromBase64, toBase64 };

/** The base64 RFC 6962 leaf hash of a leaf, as receipts carry it. */
export async function leafHashBase64(leaf: string | Uint8Array): Promise<string> {
  return toBase64(await leafHash(leaf));
}
