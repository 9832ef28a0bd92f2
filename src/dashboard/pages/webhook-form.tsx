/**
 * The webhook form, shared by "Add a webhook" and "Edit": its fields, filled from the webhook or from the rejected
 * submission, and the form read back as the API's create or update body.
 */
import type { FC } from 'hono/jsx';
import type { Webhook, WebhookBody } from '../answers.ts';
import type { Problem } from '../api.ts';
import { type Form, headersField, jsonField, typesField } from '../forms.ts';
import type { C } from '../handler.tsx';
import { json } from '../layout.tsx';

/** The webhook fields of a create or edit form as an API body, or a problem naming the bad field. */
export function webhookBody(c: C, form: Form, editing: boolean): { body: WebhookBody } | { problem: Problem } {
  const filter = jsonField(c, form, 'filterPolicy', 'body.filterPolicy');
  if ('problem' in filter) return filter;
  const body: WebhookBody = {
    url: (form.url ?? '').trim(),
    eventTypes: typesField(form.eventTypes),
    filterPolicy: filter.value,
  };
  const description = (form.description ?? '').trim();
  if (editing) body.description = description || null;
  else if (description) body.description = description;
  // Masked credential headers come back masked: only send headers when the user changed them.
  if (!editing || (form.headers ?? '').trim() !== (form.headersOriginal ?? '').trim()) {
    const headers = headersField(c, form.headers);
    if ('problem' in headers) return headers;
    body.headers = headers.value;
  }
  if (!editing) body.enabled = form.enabled === 'true';
  return { body };
}

/** Fields shared by the create and edit forms; values from the webhook being edited (or the rejected submission). */
export const WebhookFields: FC<{ w?: Webhook | Form | undefined; prefix: string }> = ({ w, prefix }) => (
  <>
    <div class="field">
      <label for={`${prefix}-url`}>URL</label>
      <input id={`${prefix}-url`} name="url" type="url" required value={w?.url ?? ''} inputmode="url" />
    </div>
    <div class="field">
      <label for={`${prefix}-desc`}>Description</label>
      <input id={`${prefix}-desc`} name="description" type="text" value={w?.description ?? ''} maxlength={500} />
    </div>
    <div class="field">
      <label for={`${prefix}-types`}>
        Event types <span class="hint">comma-separated, e.g. order.*, payment.failed; empty = every type</span>
      </label>
      <input
        id={`${prefix}-types`}
        name="eventTypes"
        type="text"
        value={Array.isArray(w?.eventTypes) ? w.eventTypes.join(', ') : (w?.eventTypes ?? '')}
      />
    </div>
    <div class="field">
      <label for={`${prefix}-filter`}>
        Filter policy <span class="hint">JSON, SNS-style; empty = none</span>
      </label>
      <textarea id={`${prefix}-filter`} name="filterPolicy">
        {typeof w?.filterPolicy === 'string' ? w.filterPolicy : json(w?.filterPolicy)}
      </textarea>
    </div>
    <div class="field">
      <label for={`${prefix}-headers`}>
        Custom headers <span class="hint">one "Name: value" per line</span>
      </label>
      <textarea id={`${prefix}-headers`} name="headers">
        {typeof w?.headers === 'string'
          ? w.headers
          : Object.entries(w?.headers ?? {})
              .map(([k, v]) => `${k}: ${v}`)
              .join('\n')}
      </textarea>
    </div>
  </>
);
