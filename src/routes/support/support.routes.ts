/**
 * `POST /v2/support/report` (docs/design.md#routes): the end-user escalation path. Stores what the user saw with
 * the ids support needs (their request id, session id, repro artifact, and this call's own request and deployment
 * ids), and answers with the report id to quote. `GET /v2/support/reports` and `…/{id}` read the caller's own
 * reports back (a handle-restricted PAT: only those about its handle); anyone else's is a 404.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { and, desc, eq, lt } from 'drizzle-orm';
import type { Principal } from '../../auth/principal.ts';
import { type Db, getDb } from '../../db/client.ts';
import { supportReports } from '../../db/schema.ts';
import { sendMail } from '../../email/send.ts';
import { renderSupportReportMail } from '../../email/templates.tsx';
import { config, runContext } from '../../env.ts';
import {
  createRouter,
  errorResponses,
  guard,
  HandleParam,
  jsonBody,
  jsonResponse,
  PageQuery,
  pageOf,
} from '../../http/openapi.ts';
import { idPattern, newId } from '../../lib/ids.ts';
import { logLine } from '../../lib/log.ts';
import { decodeCursor, toPage } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { findRole, handleExists } from '../internal/internal.repo.ts';

const MAX_ARTIFACT_BYTES = 64 * 1024;

const ReportBody = z
  .strictObject({
    summary: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .openapi({ example: 'Webhook test passes but production deliveries go to the DLQ' }),
    details: z.string().trim().min(1).max(10_000),
    handle: HandleParam.optional(),
    sessionId: z.string().min(1).max(200).optional(),
    requestId: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .openapi({ description: 'The X-Request-Id of the call that went wrong.' }),
    reproArtifact: z
      .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
      .optional()
      .refine((v) => v === undefined || new TextEncoder().encode(JSON.stringify(v)).length <= MAX_ARTIFACT_BYTES, {
        message: `At most ${MAX_ARTIFACT_BYTES} bytes.`,
      })
      .openapi({ description: 'Anything that reproduces the problem: a curl command, ids, a payload.' }),
  })
  .openapi('SupportReportRequest');

export const ReportResponse = z
  .object({
    reportId: z.string().openapi({ example: 'rpt_01JD3Q7X9T0000000000000000' }),
    requestId: z.string().openapi({ description: "This call's request id." }),
    handle: z.string().nullable(),
    handleVerified: z.boolean().openapi({ description: 'Whether you are a member of the handle you named.' }),
    createdAt: z.string(),
  })
  .openapi('SupportReport');

export const StoredReportSchema = ReportResponse.extend({
  summary: z.string(),
  details: z.string(),
  sessionId: z.string().nullable(),
  reportedRequestId: z.string().nullable().openapi({ description: 'The request id the report is about.' }),
  reproArtifact: z.unknown().nullable(),
  deploymentId: z.string().nullable(),
}).openapi('StoredSupportReport');

const REPORT_ID = idPattern('rpt');

const ReportParams = z.object({
  id: z
    .string()
    .regex(REPORT_ID)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'rpt_01JD3Q7X9T0000000000000000' }),
});

/** Reads a report as the reporter may: the same principal, and a handle-restricted PAT only about its handle. */
const own = (principal: Principal) =>
  and(
    eq(supportReports.principalId, principal.subject),
    principal.tokenHandle ? eq(supportReports.handle, principal.tokenHandle) : undefined,
  );

type ReportRow = typeof supportReports.$inferSelect;

function reportToApi(row: ReportRow) {
  return {
    reportId: row.id,
    requestId: row.requestId,
    handle: row.handle,
    handleVerified: row.handleVerified,
    createdAt: row.createdAt,
    summary: row.summary,
    details: row.details,
    sessionId: row.sessionId,
    reportedRequestId: row.reportedRequestId,
    reproArtifact: row.reproArtifact === null ? null : (JSON.parse(row.reproArtifact) as unknown),
    deploymentId: row.deploymentId,
  };
}

function listReports(db: Db, principal: Principal, limit: number, before: string | null): Promise<ReportRow[]> {
  return db
    .select()
    .from(supportReports)
    .where(and(own(principal), before ? lt(supportReports.id, before) : undefined))
    .orderBy(desc(supportReports.id))
    .limit(limit)
    .all();
}

// Reading your own reports back needs what filing them needs, without filing's 5-a-minute throttle.
const readRule = { scopes: ['support:write' as const] };

const listRoute = createRoute(
  guard(readRule, {
    method: 'get',
    path: '/v2/support/reports',
    operationId: 'listSupportReports',
    tags: ['Support'],
    summary: 'The support reports you filed',
    description: 'Newest first. A PAT restricted to a handle sees only the reports about that handle.',
    request: { query: PageQuery },
    responses: {
      200: jsonResponse(pageOf(StoredReportSchema, 'SupportReportPage'), 'Your reports, newest first.'),
      ...errorResponses(400),
    },
  }),
);

const getRoute = createRoute(
  guard(readRule, {
    method: 'get',
    path: '/v2/support/reports/{id}',
    operationId: 'getSupportReport',
    tags: ['Support'],
    summary: 'One support report you filed',
    description: "Another caller's report is a 404, as is one that does not exist.",
    request: { params: ReportParams },
    responses: { 200: jsonResponse(StoredReportSchema, 'The report as filed.'), ...errorResponses(404) },
  }),
);

const reportRoute = createRoute(
  guard(
    { scopes: ['support:write'], throttle: 'support' },
    {
      method: 'post',
      path: '/v2/support/report',
      operationId: 'createSupportReport',
      tags: ['Support'],
      summary: 'Report a problem to Gharart support',
      description: 'Include the request ids and artifacts you have; quote the returned reportId when you follow up.',
      request: { body: jsonBody(ReportBody) },
      responses: { 201: jsonResponse(ReportResponse, 'Filed.'), ...errorResponses(400, 413, 415) },
    },
  ),
);

export const supportRoutes = createRouter()
  .openapi(listRoute, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const rows = await listReports(getDb(c.env.DB), c.get('principal')!, limit + 1, decodeCursor(cursor, REPORT_ID));
    const page = toPage(rows, limit);
    return c.json({ data: page.items.map(reportToApi), nextCursor: page.nextCursor }, 200);
  })
  .openapi(getRoute, async (c) => {
    const { id } = c.req.valid('param');
    const row = await getDb(c.env.DB)
      .select()
      .from(supportReports)
      .where(and(eq(supportReports.id, id), own(c.get('principal')!)))
      .get();
    if (!row) throw problems.notFound();
    return c.json(reportToApi(row), 200);
  })
  .openapi(reportRoute, async (c) => {
    const body = c.req.valid('json');
    const principal = c.get('principal')!;
    const db = getDb(c.env.DB);
    let handleVerified = false;
    if (body.handle) {
      // A report is accepted either way (same answer, so no existence oracle); support sees whether it was verified.
      handleVerified = principal.serviceHandles
        ? (principal.serviceHandles === '*' || principal.serviceHandles.includes(body.handle)) &&
          (await handleExists(db, body.handle))
        : (await findRole(db, principal.subject, body.handle)) !== null &&
          (principal.tokenHandle === null || principal.tokenHandle === body.handle);
    }
    const now = new Date();
    const row = {
      id: newId('rpt', now.getTime()),
      principalId: principal.subject,
      authMethod: principal.method,
      handle: body.handle ?? null,
      handleVerified,
      summary: body.summary,
      details: body.details,
      sessionId: body.sessionId ?? null,
      reportedRequestId: body.requestId ?? null,
      reproArtifact: body.reproArtifact === undefined ? null : JSON.stringify(body.reproArtifact),
      requestId: c.get('requestId'),
      deploymentId: c.get('deploymentId'),
      createdAt: now.toISOString(),
    };
    await db.insert(supportReports).values(row);
    // Stored first, then mailed to support (docs/design.md#routes); a mail failure is logged and does not lose the
    // report.
    const supportEmail = config(c.env).supportEmail;
    if (supportEmail) {
      const content = renderSupportReportMail({
        ...row,
        reportId: row.id,
        principal: `${principal.key} (${principal.method})`,
        reportedRequestId: row.reportedRequestId,
        deploymentId: row.deploymentId ?? 'unknown',
      });
      const mail = sendMail(
        runContext(c.env),
        {
          to: { email: supportEmail },
          ...content,
          headers: { 'X-Gharart-Report-Id': row.id },
        },
        {
          subscriptionId: null,
          deliveryId: row.id,
          handle: row.handle ?? '-',
          eventType: 'support.report',
          severity: 'info',
        },
        { route: 'support' },
      )
        .then((outcome) => {
          if (!outcome.ok) logLine('error', 'support_mail_failed', { reportId: row.id, error: outcome.message });
        })
        .catch((err: unknown) => logLine('error', 'support_mail_failed', { reportId: row.id, error: String(err) }));
      try {
        c.executionCtx.waitUntil(mail);
      } catch {
        await mail;
      }
    }
    return c.json(
      { reportId: row.id, requestId: row.requestId, handle: row.handle, handleVerified, createdAt: row.createdAt },
      201,
    );
  });
