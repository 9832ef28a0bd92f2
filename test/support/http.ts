/** Small pieces every local test server (receivers, provider fakes) needs. */
import type { IncomingMessage } from 'node:http';

/** The whole request body; an aborted upload resolves with what arrived, so it can still be recorded. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
    req.on('aborted', () => resolve(Buffer.concat(chunks)));
  });
}

/** All request headers, lower-cased; repeated ones joined with ", " as `Headers#get` would. */
export function headerMap(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}
