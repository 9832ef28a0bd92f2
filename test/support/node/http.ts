/** Small pieces every local test server (receivers, provider fakes) needs. */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';

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

export interface LoopbackServer {
  port: number;
  /** Stops listening and cuts open connections (a slow or streaming answer must not hold the run open). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `handler` on 127.0.0.1 on a free port: the one way every test server starts and stops. `beforeClose` lets a
 * server clear its own timers first.
 */
export async function serveOnLoopback(
  name: string,
  handler: RequestListener,
  options: { beforeClose?: () => void } = {},
): Promise<{ server: Server } & LoopbackServer> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  // Longer than any client keeps an idle connection: if the server closed first, a client (workerd) could reuse a
  // socket at the moment it closes and record "Network connection lost" for a request the server never saw.
  // close() below cuts open connections anyway, so this does not hold a run open.
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // A client that resets mid-request must not take the run down.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error(`${name}: no TCP address`);
  let closing: Promise<void> | undefined;
  return {
    server,
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        options.beforeClose?.();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closing;
    },
  };
}
