/**
 * The email path's share of the deployed bundle (docs/performance.md#bundle): Email Sending (the structured
 * `send_email` message, the events consumer) replaced hand-built MIME and was to leave the bundle no larger than
 * before. The bundle is built as `npm run bundle:size` builds it (`wrangler deploy --dry-run`, wrangler.toml's
 * settings); the gzipped comparison of two commits is that command's (`npm run bundle:size -- <before> <after>`).
 */
import { describe, expect, it } from 'vitest';
import { EMAIL_PATH, measure } from '../../scripts/bundle-size.ts';
import { ROOT } from '../../scripts/wrangler-cli.ts';

/**
 * Minified bytes of src/email and src/delivery/email* in the bundle of the last commit before Email Sending
 * (`npm run bundle:size -- 50e2be6`): the email path may not grow past it.
 */
const EMAIL_PATH_BYTES_BEFORE_EMAIL_SENDING = 48_980;

describe('the deployed bundle', () => {
  it('holds no more of the email path (src/email, src/delivery/email*) than before Email Sending', () => {
    const { files } = measure(ROOT, EMAIL_PATH);
    expect(files).toBeLessThanOrEqual(EMAIL_PATH_BYTES_BEFORE_EMAIL_SENDING);
  });
});
