/** Reading what a remote server answered without trusting its size. */

/** Reads at most `limit` bytes of a body and cancels the rest: a 50 MB answer costs 4 KB. */
export async function readCappedText(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  // The usual answer is a few bytes with its length declared: read it whole, one call instead of a chunk loop (the
  // loop was 8 % of the consumer's CPU in `npm run bench:profile -- deliver`). HTTP framing ends the body at the
  // declared length; not when it is compressed, since the length counts the compressed bytes, so those stream.
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isInteger(declared) && declared <= limit && !res.headers.has('content-encoding')) {
    return fitText(new Uint8Array(await res.arrayBuffer()), limit);
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const all = new Uint8Array(Math.min(size, limit));
  let offset = 0;
  for (const c of chunks) {
    const part = c.subarray(0, Math.min(c.byteLength, all.length - offset));
    all.set(part, offset);
    offset += part.byteLength;
    if (offset >= all.length) break;
  }
  return fitText(all, limit);
}

/** The text of at most `limit` bytes, itself at most `limit` bytes once encoded again. */
function fitText(bytes: Uint8Array, limit: number): string {
  // `stream: true` holds back a character cut in half at the limit instead of decoding it as U+FFFD (3 bytes);
  // invalid bytes still decode to U+FFFD, so trim until the stored text fits the limit too.
  let text = new TextDecoder().decode(bytes.subarray(0, limit), { stream: true });
  if (text.length * 3 <= limit) return text;
  const encoder = new TextEncoder();
  while (encoder.encode(text).byteLength > limit) text = text.slice(0, -1);
  return text;
}
