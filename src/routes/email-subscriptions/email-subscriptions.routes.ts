/**
 * Email subscriptions (docs/design.md#routes): list (with the owner default as `owner-default`), create as
 * `pending_confirmation` (double opt-in), delete; and `PUT …/owner-default-email` (owner only; `null` unsets it).
 */

import { createRoute, z } from '@hono/zod-openapi';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { alertSubscriptionStale } from '../../delivery/alerts.ts';
import { diagnoseEmail, loadEmailFailures, loadProviderVerdicts } from '../../delivery/email-diagnosis.ts';
import { runTestSend, testEvent } from '../../delivery/test-send.ts';
import { sendConfirmation, sendFirstConfirmation } from '../../email/confirmation.ts';
import { claimConfirmationResend } from '../../email/confirmation-limits.ts';
import { checkAtSns, subscribeAtSns, unsubscribeAtSns } from '../../email/sns-subscriptions.ts';
import { config, runContext } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse, PageQuery, pageOf } from '../../http/openapi.ts';
import { requireKnownEventTypes } from '../../http/schemas.ts';
import { defaultTestEventType } from '../../lib/event-catalog.ts';
import { newId } from '../../lib/ids.ts';
import { fromJsonColumn, toJsonColumn } from '../../lib/json.ts';
import { logLine } from '../../lib/log.ts';
import { decodeCursor, encodeCursor, toPage } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { handleD1, handleDb } from '../../middleware/auth.ts';
import { answerInBatch } from '../../middleware/idempotency.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import {
  deleteEmailSubscription,
  type EmailSubscriptionRow,
  findStandardByEmail,
  getOwnerDefault,
  getStandard,
  insertStandard,
  listStandard,
  upsertOwnerDefault,
} from './email-subscriptions.repo.ts';
import {
  CreateEmailSubscriptionBody,
  EMAIL_SUBSCRIPTION_ID,
  EmailSubscriptionParams,
  EmailSubscriptionSchema,
  OWNER_DEFAULT_ID,
  OwnerDefaultBody,
} from './email-subscriptions.schemas.ts';

/** A cursor position above every real id: "the standard subscriptions, from the newest". */
const AFTER_OWNER_DEFAULT = `esub_${'Z'.repeat(26)}`;

/** The API view of a subscription row; the owner default shows as `owner-default`, unset or not. */
export function emailSubscriptionToApi(row: EmailSubscriptionRow) {
  return {
    id: row.kind === 'owner_default' ? OWNER_DEFAULT_ID : row.id,
    kind: row.kind,
    email: row.email,
    eventTypes: fromJsonColumn<string[]>(row.eventTypes),
    filterPolicy: fromJsonColumn<Record<string, unknown[]>>(row.filterPolicy),
    status: row.status,
    statusReason: row.statusReason,
    confirmedAt: row.confirmedAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

const UNSET_OWNER_DEFAULT = {
  id: OWNER_DEFAULT_ID,
  kind: 'owner_default' as const,
  email: null,
  eventTypes: null,
  filterPolicy: null,
  status: 'unset' as const,
  statusReason: 'No owner default email is set: critical events have no guaranteed recipient.',
  confirmedAt: null,
  createdAt: null,
  updatedAt: null,
};

/** Why a re-set owner default address still gets no mail, and what the owner can do about it. */
function ownerDefaultSilent(current: EmailSubscriptionRow) {
  const address = current.emailNormalized;
  const why =
    current.status === 'unsubscribed'
      ? `${address} unsubscribed with the link in one of our mails, so it gets no mail, critical events included`
      : `${address} is suppressed (${current.statusReason ?? 'a permanent bounce or a complaint'}), so it gets no mail`;
  return problems.conflict(
    `${why}; setting it again changes nothing. Set another address, or, if this mailbox should receive mail again, ` +
      'unset it with {"email": null} and set it again: it then starts active and a test mail goes out at once.',
    { subscriptionStatus: current.status },
  );
}

const read = { handle: true, scopes: ['notifications:read' as const] };
const write = { handle: true, scopes: ['notifications:write' as const], roles: WRITER_ROLES };

const listRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/notifications/email-subscriptions',
    operationId: 'listEmailSubscriptions',
    tags: ['Email Subscriptions'],
    summary: 'List email subscriptions',
    description:
      'The first page starts with the owner default email (`id: owner-default`), shown as `unset` when there is none.',
    request: { params: HandlePathParams, query: PageQuery },
    responses: {
      200: jsonResponse(pageOf(EmailSubscriptionSchema, 'EmailSubscriptionPage'), 'Newest first.'),
      ...errorResponses(400),
    },
  }),
);

const createSubRoute = createRoute(
  guard(write, {
    method: 'post',
    path: '/v2/handles/{handle}/notifications/email-subscriptions',
    operationId: 'createEmailSubscription',
    tags: ['Email Subscriptions'],
    summary: 'Subscribe an email address',
    description:
      'The subscription starts as `pending_confirmation` and receives nothing but its confirmation mail until ' +
      'the address confirms (double opt-in). Addresses are compared case-insensitively; a duplicate is 409 naming ' +
      'the existing subscription (`existingId`).',
    request: { params: HandlePathParams, body: jsonBody(CreateEmailSubscriptionBody) },
    responses: {
      201: jsonResponse(EmailSubscriptionSchema, 'Created, pending confirmation.'),
      ...errorResponses(400, 409, 413, 415, 422),
    },
  }),
);

const deleteSubRoute = createRoute(
  guard(write, {
    method: 'delete',
    path: '/v2/handles/{handle}/notifications/email-subscriptions/{id}',
    operationId: 'deleteEmailSubscription',
    tags: ['Email Subscriptions'],
    summary: 'Delete an email subscription',
    description:
      'Its pending deliveries become `cancelled`. The owner default email is changed with `PUT …/owner-default-email`.',
    request: { params: EmailSubscriptionParams },
    responses: { 204: { description: 'Deleted.' } },
  }),
);

const ownerDefaultRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:write'], roles: ['owner'] },
    {
      method: 'put',
      path: '/v2/handles/{handle}/notifications/owner-default-email',
      operationId: 'setOwnerDefaultEmail',
      tags: ['Email Subscriptions'],
      summary: 'Set or unset the owner default email',
      description:
        'The owner default email receives every critical event whatever the filters (unless ownerFallback is ' +
        'none). `null` unsets it; settings and health then warn `owner_default_email_unset`. Setting again the ' +
        'address that unsubscribed or was suppressed is 409 with why and how to fix it: it would stay silent.',
      request: { params: HandlePathParams, body: jsonBody(OwnerDefaultBody) },
      responses: {
        200: jsonResponse(EmailSubscriptionSchema, 'The owner default email.'),
        ...errorResponses(400, 409, 413, 415),
      },
    },
  ),
);

const getOwnerDefaultRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/notifications/owner-default-email',
      operationId: 'getOwnerDefaultEmail',
      tags: ['Email Subscriptions'],
      summary: 'The owner default email and its state',
      request: { params: HandlePathParams },
      responses: {
        200: jsonResponse(EmailSubscriptionSchema, 'The owner default email (`status: unset` when there is none).'),
      },
    },
  ),
);

const EmailTestBody = z
  .strictObject({
    eventType: z
      .string()
      .max(100)
      .optional()
      .openapi({ description: 'Catalog sample to send (default order.created).' }),
  })
  .openapi('EmailTestRequest');

const EmailDiagnosisSchema = z
  .object({
    summary: z.string(),
    subscription: z.object({
      kind: z.enum(['standard', 'owner_default']),
      email: z.string(),
      status: z.string(),
      statusReason: z.string().nullable(),
      confirmedAt: z.string().nullable(),
      provider: z.string(),
    }),
    test: z.object({
      sent: z.boolean(),
      outcome: z.enum(['succeeded', 'failed', 'not_sent']),
      errorClass: z.string().nullable(),
      detail: z.string().nullable(),
    }),
    productionFailures: z.array(
      z.object({
        deliveryId: z.string(),
        notificationId: z.string().nullable(),
        errorClass: z.string().nullable(),
        status: z.string(),
        at: z.string(),
      }),
    ),
    providerCheck: z.object({ provider: z.string(), reference: z.string(), state: z.string() }).nullable().openapi({
      description:
        'For SNS: the subscription ARN and what GetSubscriptionAttributes said (confirmed, pending, not_found).',
    }),
    providerVerdicts: z
      .object({
        lastDeliveredAt: z.string().nullable(),
        recent: z.array(
          z.object({ deliveryId: z.string(), kind: z.enum(['event', 'test']), verdict: z.string(), at: z.string() }),
        ),
      })
      .nullable()
      .openapi({
        description: "Email Sending's verdicts on this subscription's recent mails; null for other providers.",
      }),
    nextSteps: z.array(z.string()),
  })
  .openapi('EmailDiagnosis');

export const EmailTestResultSchema = z
  .object({ deliveryId: z.string().nullable(), diagnosis: EmailDiagnosisSchema })
  .openapi('EmailTestResult');

const emailTestRoute = createRoute(
  guard(
    { ...write, throttle: 'test_sends' },
    {
      method: 'post',
      path: '/v2/handles/{handle}/notifications/email-subscriptions/{id}/test',
      operationId: 'testEmailSubscription',
      tags: ['Email Subscriptions'],
      summary: 'Send a test mail through the production path and diagnose the subscription',
      description:
        '`owner-default` works as id. A pending, suppressed, unsubscribed or stale address gets no mail; the ' +
        'diagnosis says why and what to do.',
      request: { params: EmailSubscriptionParams, body: { ...jsonBody(EmailTestBody), required: false } },
      responses: {
        200: jsonResponse(EmailTestResultSchema, 'The diagnosis.'),
        ...errorResponses(400, 413, 415, 422),
      },
    },
  ),
);

const resendConfirmationRoute = createRoute(
  guard(
    { ...write, throttle: 'test_sends' },
    {
      method: 'post',
      path: '/v2/handles/{handle}/notifications/email-subscriptions/{id}/resend-confirmation',
      operationId: 'resendEmailConfirmation',
      tags: ['Email Subscriptions'],
      summary: 'Send the confirmation mail again',
      description:
        'Only for a subscription still pending confirmation. A new link is made; the previous one stops working. ' +
        'At most one confirmation mail a minute per subscription, and 5 resent mails a UTC day per address across ' +
        'all handles (429 with Retry-After).',
      request: { params: EmailSubscriptionParams },
      responses: {
        202: jsonResponse(EmailSubscriptionSchema, 'Sent (or why not, in statusReason).'),
        ...errorResponses(409),
      },
    },
  ),
);

export const emailSubscriptionsRoutes = createRouter()
  .openapi(resendConfirmationRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const db = await handleDb(c);
    const sub = id === OWNER_DEFAULT_ID ? undefined : await getStandard(db, handle, id);
    if (!sub) throw problems.notFound();
    if (sub.status !== 'pending_confirmation') {
      throw problems.conflict(`The subscription is ${sub.status}; only a pending one gets a confirmation mail.`);
    }
    const claim = await claimConfirmationResend(await handleD1(c), c.env.DB, sub);
    if (!claim.ok) throw problems.rateLimited(claim.detail, claim.retryAfterSeconds);
    if (config(c.env).emailProvider === 'sns') await subscribeAtSns(c.env, sub);
    else await sendConfirmation(runContext(c.env), { id: sub.id, handle, email: sub.emailNormalized });
    return c.json(emailSubscriptionToApi((await getStandard(db, handle, id))!), 202);
  })
  .openapi(emailTestRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const body = (await c.req.text()) ? c.req.valid('json') : {};
    const db = await handleDb(c);
    let sub = id === OWNER_DEFAULT_ID ? await getOwnerDefault(db, handle) : await getStandard(db, handle, id);
    if (!sub) {
      if (id === OWNER_DEFAULT_ID)
        throw problems.unprocessable(
          'No owner default email is set; set one with PUT …/notifications/owner-default-email.',
        );
      throw problems.notFound();
    }
    // Like a webhook's test: by default a type the subscription receives (docs/design.md#test-sends).
    const eventType = body.eventType ?? defaultTestEventType(fromJsonColumn<string[]>(sub.eventTypes));
    const event = testEvent(handle, { eventType });
    if (!event) throw problems.unprocessable(`Unknown event type ${eventType}; see GET /v2/event-types.`);
    let providerCheck: { provider: string; reference: string; state: string } | null = null;
    if (sub.provider === 'sns' && sub.providerRef) {
      // The stale-ARN playbook: ask SNS now, and mirror what it says before deciding whether to send.
      try {
        const check = await checkAtSns(c.env, sub);
        if (check.becameStale) await alertSubscriptionStale(runContext(c.env), sub);
        providerCheck = { provider: 'sns', reference: sub.providerRef, state: check.state };
      } catch (err) {
        providerCheck = {
          provider: 'sns',
          reference: sub.providerRef,
          state: `check_failed: ${String(err).slice(0, 200)}`,
        };
      }
      sub = (id === OWNER_DEFAULT_ID ? await getOwnerDefault(db, handle) : await getStandard(db, handle, id)) ?? sub;
    }
    let deliveryId: string | null = null;
    let outcome = null;
    // A pending address receives nothing but its confirmation (docs/design.md#email): no test mail either.
    if (sub.status === 'active') {
      const sent = await runTestSend(c.env, {
        handle,
        channel: 'email',
        recipientType: sub.kind === 'owner_default' ? 'owner_default' : 'email',
        subscriptionId: sub.id,
        target: sub.emailNormalized,
        event,
      });
      deliveryId = sent.delivery.id;
      outcome = sent.outcome;
    }
    const d1 = await handleD1(c);
    const verdicts = sub.provider === 'cloudflare' ? await loadProviderVerdicts(d1, sub.id) : null;
    const failures = await loadEmailFailures(d1, sub.id);
    const diagnosis = diagnoseEmail(sub, outcome, failures, providerCheck, verdicts);
    return c.json({ deliveryId, diagnosis }, 200);
  })
  .openapi(getOwnerDefaultRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const owner = await getOwnerDefault(await handleDb(c), handle);
    return c.json(owner ? emailSubscriptionToApi(owner) : UNSET_OWNER_DEFAULT, 200);
  })
  .openapi(listRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const { limit, cursor } = c.req.valid('query');
    const before = decodeCursor(cursor, EMAIL_SUBSCRIPTION_ID);
    const db = await handleDb(c);
    if (before) {
      const page = toPage(await listStandard(db, handle, limit + 1, before), limit);
      return c.json({ data: page.items.map(emailSubscriptionToApi), nextCursor: page.nextCursor }, 200);
    }
    // The first page leads with the owner default email, which counts towards `limit`.
    const [rows, owner] = await Promise.all([listStandard(db, handle, limit, null), getOwnerDefault(db, handle)]);
    const first = owner ? emailSubscriptionToApi(owner) : UNSET_OWNER_DEFAULT;
    if (limit === 1) {
      return c.json({ data: [first], nextCursor: rows.length ? encodeCursor(AFTER_OWNER_DEFAULT) : null }, 200);
    }
    const page = toPage(rows, limit - 1);
    return c.json({ data: [first, ...page.items.map(emailSubscriptionToApi)], nextCursor: page.nextCursor }, 200);
  })
  .openapi(createSubRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    requireKnownEventTypes(body.eventTypes);
    const cfg = config(c.env);
    const now = Date.now();
    const row: EmailSubscriptionRow = {
      id: newId('esub', now),
      handle,
      kind: 'standard',
      email: body.email,
      emailNormalized: body.email.toLowerCase(),
      eventTypes: toJsonColumn(body.eventTypes),
      filterPolicy: toJsonColumn(body.filterPolicy),
      status: 'pending_confirmation',
      statusReason: 'Waiting for the address to confirm.',
      // Set by sendConfirmation below, which mails the only copy of the token.
      confirmTokenHash: null,
      confirmExpiresAt: null,
      // The confirmation mail goes out below: the resend cooldown counts from it.
      confirmSentAt: new Date(now).toISOString(),
      confirmedAt: null,
      provider: cfg.emailProvider,
      providerRef: null,
      providerCheckedAt: null,
      createdAt: new Date(now).toISOString(),
      updatedAt: new Date(now).toISOString(),
    };
    const location = `/v2/handles/${handle}/notifications/email-subscriptions/${row.id}`;
    // The answer as created is recorded with the row, so a retry after a lost answer replays it rather than hitting
    // the duplicate check (docs/reliability.md#scenarios); the final answer below replaces it once it is known.
    const answer = await answerInBatch(c, {
      status: 201,
      body: emailSubscriptionToApi(row),
      headers: { Location: location },
    });
    const outcome = await insertStandard(await handleD1(c), row, cfg.maxEmailSubscriptionsPerHandle, answer);
    if (outcome === 'conflict') {
      const existing = await findStandardByEmail(await handleDb(c), handle, row.emailNormalized);
      throw problems.conflict(
        existing
          ? `${row.emailNormalized} is already subscribed on this handle as ${existing.id} (${existing.status}); ` +
              (existing.status === 'pending_confirmation'
                ? `resend its confirmation with POST …/email-subscriptions/${existing.id}/resend-confirmation.`
                : `delete ${existing.id} first to subscribe the address again with other settings.`)
          : `${row.emailNormalized} is already subscribed on this handle.`,
        existing ? { existingId: existing.id, existingStatus: existing.status } : undefined,
      );
    }
    if (outcome === 'limit_reached') {
      throw problems.unprocessable(
        `A handle can have at most ${cfg.maxEmailSubscriptionsPerHandle} email subscriptions; delete one first.`,
        { limit: cfg.maxEmailSubscriptionsPerHandle },
      );
    }
    // SNS runs its own double opt-in; with the other providers we send the confirmation mail ourselves.
    const confirmation =
      cfg.emailProvider === 'sns'
        ? await subscribeAtSns(c.env, row)
        : await sendFirstConfirmation(runContext(c.env), { id: row.id, handle, email: row.emailNormalized });
    const saved = (await getStandard(await handleDb(c), handle, row.id)) ?? {
      ...row,
      statusReason: confirmation.detail,
    };
    c.header('Location', location);
    return c.json(emailSubscriptionToApi(saved), 201);
  })
  .openapi(deleteSubRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    if (id === OWNER_DEFAULT_ID) {
      throw problems.unprocessable(
        'The owner default email cannot be deleted here; the owner unsets it with PUT ' +
          '…/notifications/owner-default-email {"email": null}.',
      );
    }
    const db = await handleDb(c);
    const existing = await getStandard(db, handle, id);
    if (!existing) throw problems.notFound();
    if (!(await deleteEmailSubscription(await handleD1(c), handle, id, new Date().toISOString())))
      throw problems.notFound();
    if (existing.provider === 'sns') await unsubscribeAtSns(c.env, existing.providerRef);
    return c.body(null, 204);
  })
  .openapi(ownerDefaultRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const { email } = c.req.valid('json');
    const db = await handleDb(c);
    const now = new Date().toISOString();
    if (email === null) {
      const current = await getOwnerDefault(db, handle);
      if (current) {
        await deleteEmailSubscription(await handleD1(c), handle, current.id, now);
        if (current.provider === 'sns') await unsubscribeAtSns(c.env, current.providerRef);
      }
      return c.json(UNSET_OWNER_DEFAULT, 200);
    }
    const current = await getOwnerDefault(db, handle);
    // Setting the same address again changes nothing: it must not clear a suppression or a provider reference. An
    // address that gets no mail says so rather than answering 200 as if it were fine.
    if (current && current.emailNormalized === email.toLowerCase()) {
      if (current.status === 'unsubscribed' || current.status === 'suppressed') throw ownerDefaultSilent(current);
      return c.json(emailSubscriptionToApi(current), 200);
    }
    const row = await upsertOwnerDefault(db, {
      id: newId('esub'),
      handle,
      kind: 'owner_default',
      email,
      emailNormalized: email.toLowerCase(),
      eventTypes: null,
      filterPolicy: null,
      // The owner's own address, set by the owner: no double opt-in (a test mail goes out with the email channel).
      status: 'active',
      statusReason: null,
      confirmTokenHash: null,
      confirmExpiresAt: null,
      confirmSentAt: null,
      confirmedAt: now,
      provider: config(c.env).emailProvider,
      providerRef: null,
      providerCheckedAt: null,
      createdAt: now,
      updatedAt: now,
    });
    if (row.provider === 'sns') {
      // SNS mails its own confirmation to the new address at once; until it is confirmed nothing reaches it.
      if (current?.provider === 'sns') await unsubscribeAtSns(c.env, current.providerRef);
      await subscribeAtSns(c.env, row);
      return c.json(emailSubscriptionToApi((await getOwnerDefault(db, handle))!), 200);
    }
    // A changed owner address gets a test mail at once (docs/design.md#routes), through the production path, recorded
    // as a test delivery; the PUT does not wait for the provider.
    const mail = runTestSend(c.env, {
      handle,
      channel: 'email',
      recipientType: 'owner_default',
      subscriptionId: row.id,
      target: row.emailNormalized,
      // A critical sample: what the owner will receive when it matters.
      event: testEvent(handle, { eventType: 'payment.failed' })!,
      reason: 'owner_default_changed',
    }).catch((err: unknown) => logLine('error', 'owner_test_mail_failed', { error: String(err) }));
    try {
      c.executionCtx.waitUntil(mail);
    } catch {
      await mail;
    }
    return c.json(emailSubscriptionToApi(row), 200);
  });
