/** What a remote server answered, read without trusting its size (src/lib/response-body.ts). */
import { describe, expect, it } from 'vitest';
import { readCappedText } from '../../src/lib/response-body.ts';

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;

function answer(body: string, headers: Record<string, string>) {
  return new Response(body, { headers });
}

/** An answer of `chunks` × 1,000 bytes of `ch`, counting the chunks the reader pulled. */
function counted(ch: string, chunks: number, headers: Record<string, string>) {
  const seen = { pulled: 0 };
  const chunk = new TextEncoder().encode(ch.repeat(1000));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (seen.pulled === chunks) return controller.close();
      seen.pulled++;
      controller.enqueue(chunk);
    },
  });
  return { res: new Response(body, { headers }), seen };
}

describe('readCappedText', () => {
  it('a short answer with its length declared is read whole', async () => {
    const body = '{"ok":true,"note":"grüße"}';
    expect(await readCappedText(answer(body, { 'content-length': String(bytes(body)) }), 4096)).toBe(body);
  });

  it('a declared length above the cap streams and stops reading at the cap', async () => {
    const { res, seen } = counted('a', 1000, { 'content-length': '1000000' });
    expect(await readCappedText(res, 4096)).toBe('a'.repeat(4096));
    expect(seen.pulled).toBeLessThan(10);
  });

  it('a compressed answer is not trusted by its declared (compressed) length: reading stops at the cap', async () => {
    // fetch() decompresses, so a small `content-length` can stand for a body thousands of times larger.
    const { res, seen } = counted('b', 1000, { 'content-encoding': 'gzip', 'content-length': '40' });
    expect(await readCappedText(res, 4096)).toBe('b'.repeat(4096));
    expect(seen.pulled).toBeLessThan(10);
  });

  it('a cap inside a multi-byte character keeps the stored text within the cap', async () => {
    const body = `${'a'.repeat(4095)}${'é'.repeat(10)}`;
    const text = await readCappedText(answer(body, { 'content-length': String(bytes(body)) }), 4096);
    expect(bytes(text)).toBeLessThanOrEqual(4096);
    expect(text).toBe('a'.repeat(4095));
  });
});
