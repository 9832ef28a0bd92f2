import { describe, expect, it } from 'vitest';
import { call, callJson, signJwt } from '../support/helpers.ts';

describe('smoke', () => {
  it('health pings D1', async () => {
    const { status, body, res } = await callJson('GET', '/v2/health');
    expect(status).toBe(200);
    expect(body.d1.ok).toBe(true);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  });
  it('tokens list with a JWT', async () => {
    const res = await call('GET', '/v2/tokens', { token: await signJwt() });
    expect(res.status).toBe(200);
  });
});
