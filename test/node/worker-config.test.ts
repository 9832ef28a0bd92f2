/**
 * Starts the Worker from wrangler.toml exactly as `wrangler dev` would (bundled by wrangler, every binding local),
 * proving the configuration and not only the code, then validates the served OpenAPI document with an independent
 * OpenAPI 3.1 validator.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { unstable_startWorker } from 'wrangler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Worker = Awaited<ReturnType<typeof unstable_startWorker>>;
let worker: Worker;

beforeAll(async () => {
  worker = await unstable_startWorker({
    config: 'wrangler.toml',
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false },
  });
  await worker.ready;
});

afterAll(async () => {
  await worker?.dispose();
});

describe('the Worker built from wrangler.toml', () => {
  it('answers /v2/health with a D1 ping and a deployment id', async () => {
    const res = await worker.fetch('http://example.test/v2/health');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { d1: { ok: boolean }; deploymentId: string };
    expect(body.d1.ok).toBe(true);
    expect(res.headers.get('x-deployment-id')).toBe(body.deploymentId);
  });

  it('serves an OpenAPI document that is valid OpenAPI 3.1', async () => {
    const res = await worker.fetch('http://example.test/v2/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    const validator = new Validator();
    const result = await validator.validate(doc as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('the validator does reject an invalid document (so the check above can fail)', async () => {
    const result = await new Validator().validate({ openapi: '3.1.0', info: { title: 'x' }, paths: { bad: {} } });
    expect(result.valid).toBe(false);
  });
});
