/**
 * "Retry" of a dead or skipped delivery, offered wherever a delivery is listed (the delivery doctor, a webhook's log,
 * a notification): `POST …/deliveries/{id}/retry`, then back to the page it came from.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { Delivery } from '../answers.ts';
import type { ApiFetch } from '../api.ts';
import { idemHeaders, pathId } from '../forms.ts';
import { handlePage, redirectWith, render } from '../handler.tsx';
import { ErrorPage, handleBase, PostForm } from '../layout.tsx';

/** `POST /dashboard/h/:handle/deliveries/:id/retry`. */
export function deliveryRetryRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, undefined, 'Retry');

  r.post(
    '/h/:handle/deliveries/:id/retry',
    page(async (c, h) => {
      const id = pathId(c);
      const back = h.form.back ?? '';
      // Only back to a page of this handle.
      const target = back.startsWith(`${handleBase(h.handle)}`) && !back.includes('//') ? back : handleBase(h.handle);
      const res = await h.api.call<Delivery>('POST', `/v2/handles/${h.handle}/deliveries/${id}/retry`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return render(
          c,
          h.frame,
          <>
            <ErrorPage problem={res.problem} signedIn />
            <p>
              <a href={target}>Back</a>
            </p>
          </>,
          res.status,
        );
      return redirectWith(c, target, 'retry_queued');
    }),
  );

  return r;
}

/** "Retry" for a dead or skipped delivery (nothing for any other status); comes back to `back` afterwards. */
export const RetryButton: FC<{
  base: string;
  deliveryId: string;
  status: string;
  back: string;
  csrf: string;
  idem: string;
}> = (p) =>
  p.status === 'dead' || p.status === 'skipped' ? (
    <PostForm action={`${p.base}/deliveries/${p.deliveryId}/retry`} csrf={p.csrf} idem={p.idem}>
      <input type="hidden" name="back" value={p.back} />
      <button type="submit" class="secondary">
        Retry
      </button>
    </PostForm>
  ) : null;
