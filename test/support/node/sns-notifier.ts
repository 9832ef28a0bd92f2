/**
 * A stand-in for Amazon SNS's side of HTTP(S) delivery, for the worker tests of `POST /v2/providers/sns/events`:
 * a real HTTP server on 127.0.0.1, started once per run by `global-setup.ts` (port provided as `snsNotifierPort`).
 *
 * At start it makes a throwaway RSA-2048 key and self-signed X.509 certificate with the `openssl` CLI (as SNS has a
 * key whose certificate it publishes), and serves:
 *
 *   GET  /SimpleNotificationService-test.pem   the certificate (PEM), as SNS serves its signing certificate
 *   GET  /confirm?…                            a SubscribeURL: records the visit, answers ConfirmSubscriptionResponse XML
 *   POST /_sign                                body: an SNS message object (Type, MessageId, TopicArn, Message,
 *                                              Timestamp, SignatureVersion "1"|"2", Subject?, SubscribeURL?, Token?);
 *                                              answers it with SigningCertURL (unless given) and Signature set —
 *                                              signed independently of the Worker's code, with node:crypto
 *   GET  /_requests?path=/p                    every request recorded for that path (method, path, query)
 *
 * Every request (including ones to unknown paths, answered 404) is recorded, so a test can prove a URL was NOT fetched.
 */
import { execFileSync } from 'node:child_process';
import { createSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveOnLoopback } from './http.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the SNS notifier (signing certificate, SubscribeURL, `/_sign`) on 127.0.0.1 (test/support/node/sns-notifier.ts). */
    snsNotifierPort: number;
  }
}

export const SNS_NOTIFIER_CERT_PATH = '/SimpleNotificationService-test.pem';

interface Recorded {
  method: string;
  path: string;
  query: string;
  at: string;
}

/** AWS's string to sign, written here independently of src/email/sns-signature.ts. */
function stringToSign(m: Record<string, unknown>): string {
  const keys =
    m.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  return keys
    .filter((k) => m[k] !== undefined)
    .map((k) => `${k}\n${String(m[k])}\n`)
    .join('');
}

function makeKeyAndCert(): { keyPem: string; certPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sns-notifier-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=sns.test',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'pipe' },
    );
    return { keyPem: readFileSync(key, 'utf8'), certPem: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startSnsNotifier(): Promise<{ port: number; close: () => Promise<void> }> {
  const { keyPem, certPem } = makeKeyAndCert();
  const recorded: Recorded[] = [];
  let port = 0;

  const served = await serveOnLoopback('sns-notifier', async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const isControl = url.pathname.startsWith('/_');
      if (!isControl)
        recorded.push({
          method: req.method ?? 'GET',
          path: url.pathname,
          query: url.search,
          at: new Date().toISOString(),
        });

      if (req.method === 'GET' && url.pathname === SNS_NOTIFIER_CERT_PATH)
        return send(res, 200, certPem, 'application/x-pem-file');
      if (req.method === 'GET' && url.pathname === '/confirm') {
        const xml =
          '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><ConfirmSubscriptionResult>' +
          `<SubscriptionArn>${url.searchParams.get('TopicArn') ?? 'arn:aws:sns:eu-west-1:123456789012:unknown'}:sub</SubscriptionArn>` +
          '</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>';
        return send(res, 200, xml, 'text/xml');
      }
      if (req.method === 'GET' && url.pathname === '/_requests') {
        const path = url.searchParams.get('path');
        return send(res, 200, JSON.stringify(recorded.filter((r) => path === null || r.path === path)));
      }
      if (req.method === 'POST' && url.pathname === '/_sign') {
        const message = JSON.parse(await readBody(req)) as Record<string, unknown>;
        const version = String(message.SignatureVersion ?? '1');
        const signed: Record<string, unknown> = {
          SignatureVersion: version,
          SigningCertURL: `http://127.0.0.1:${port}${SNS_NOTIFIER_CERT_PATH}`,
          ...message,
        };
        const signer = createSign(version === '2' ? 'RSA-SHA256' : 'RSA-SHA1');
        signer.update(stringToSign(signed), 'utf8');
        signed.Signature = signer.sign(keyPem, 'base64');
        return send(res, 200, JSON.stringify(signed));
      }
      return send(res, 404, JSON.stringify({ error: 'not found' }));
    } catch (err) {
      return send(res, 500, JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    }
  });

  port = served.port;
  return { port, close: served.close };
}
