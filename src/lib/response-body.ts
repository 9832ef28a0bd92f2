/** Reading what a remote server answered without trusting its size. */

/** Reads at most `limit` bytes of a body and cancels the rest: a 50 MB answer costs 4 KB. */
export async function readCappedText(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
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
  // `stream: true` holds back a character cut in half at the limit instead of decoding it as U+FFFD (3 bytes);
  // invalid bytes still decode to U+FFFD, so trim until the stored text fits the limit too.
  let text = new TextDecoder().decode(all, { stream: true });
  const encoder = new TextEncoder();
  while (encoder.encode(text).byteLength > limit) text = text.slice(0, -1);
  return text;
}
