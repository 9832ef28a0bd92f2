/**
 * `POST /v2/support/report` (docs/design.md#routes): the end-user escalation path. Stores what the user saw with
 * the ids support needs (their request id, session id, repro artifact, and this call's own request and deployment
 * ids), and answers with the report id to quote.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { getDb } from '../../db/client.ts';
import { supportReports } from '../../db/schema.ts';
import { sendMail } from '../../email/send.ts';
import { renderSupportReportMail } from '../../email/templates.tsx';
import { config, runContext } from '../../env.ts';
import { createRouter, errorResponses, guard, HandleParam, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { newId } from '../../lib/ids.ts';
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

export const supportRoutes = createRouter().openapi(reportRoute, async (c) => {
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
        subject: content.subject,
        text: content.text,
        html: content.html,
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
        if (!outcome.ok)
          console.error(
            JSON.stringify({ level: 'error', msg: 'support_mail_failed', reportId: row.id, error: outcome.message }),
          );
      })
      .catch((err: unknown) =>
        console.error(
          JSON.stringify({ level: 'error', msg: 'support_mail_failed', reportId: row.id, error: String(err) }),
        ),
      );
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
