/**
 * The HTML every mail shares, as hono/jsx components: the page frame, banner, paragraphs, links, the data table and
 * the footer. JSX escapes every value; the styles are inline and nothing is loaded (no images, fonts or stylesheets),
 * so a mail renders the same with remote content blocked and tracks nobody. Block elements end with a line break so
 * the HTML source reads one block per line.
 */
import type { Child } from 'hono/jsx';
import type { JSX } from 'hono/jsx/jsx-runtime';

/** A line break between blocks of the HTML source (JSX drops the ones in the markup). */
export const NL = '\n';

// Unquoted on purpose (multi-word family names may be bare identifiers): the value sits in a double-quoted attribute.
const FONT = '-apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica,Arial,sans-serif';
const BODY_STYLE =
  'margin:0;padding:24px 12px;background:#f6f8fa;color:#1f2328;' +
  `font-family:${FONT};font-size:15px;line-height:1.5;`;
const CARD_STYLE =
  'max-width:640px;margin:0 auto;padding:24px;background:#ffffff;border:1px solid #d0d7de;border-radius:6px;';
/** A highlighted paragraph at the top ("This is a test notification"): `<Para style={BANNER_STYLE}>`. */
export const BANNER_STYLE =
  'margin:0 0 16px;padding:8px 12px;background:#fff8c5;border:1px solid #d4a72c;border-radius:4px;font-weight:600;';
/** A link drawn as a button: `<Link href={…} style={BUTTON_STYLE}>`. */
export const BUTTON_STYLE =
  'display:inline-block;padding:10px 18px;background:#1f883d;color:#ffffff;border-radius:6px;' +
  'text-decoration:none;font-weight:600;';
const CELL = 'padding:6px 8px;border-top:1px solid #d0d7de;vertical-align:top;text-align:left;';
const MONO = 'ui-monospace,SFMono-Regular,Menlo,Consolas,monospace';
/** The 20px heading each mail starts with; `margin` is the space below it. */
export const headingStyle = (margin: string) => `margin:${margin};font-size:20px;line-height:1.3;`;

/**
 * A mail's HTML as a string: the doctype (which JSX cannot express) and the rendered page. Mails are built from
 * synchronous components only; an async one would render to a Promise, which is refused rather than sent.
 */
export function renderMailHtml(page: JSX.Element): string {
  return `<!DOCTYPE html>${NL}${renderFragment(page)}${NL}`;
}

/** Renders a piece of a mail on its own, to measure it (the size budget of a notification mail). */
export function renderFragment(node: JSX.Element): string {
  const html: unknown = node instanceof Promise ? node : (node as { toString(): unknown }).toString();
  if (typeof html !== 'string') throw new Error('mail HTML must render synchronously (no async components)');
  return html;
}

/** The frame of every mail: `<html lang="en">` with the title, a grey background and a white card. */
export function MailPage(props: { title: string; children?: Child }) {
  return (
    <html lang="en">
      {NL}
      <head>
        {NL}
        <meta charset="utf-8" />
        {NL}
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {NL}
        <title>{props.title}</title>
        {NL}
      </head>
      {NL}
      <body style={BODY_STYLE}>
        {NL}
        <div style={CARD_STYLE}>
          {NL}
          {props.children}
        </div>
        {NL}
      </body>
      {NL}
    </html>
  );
}

export function Para(props: { children?: Child; style?: string }) {
  return (
    <>
      <p style={props.style ?? 'margin:0 0 12px;'}>{props.children}</p>
      {NL}
    </>
  );
}

/** A link; only ever to one of our URLs (checked by the template), never to one from event data. */
export function Link(props: { href: string; style?: string; children?: Child }) {
  return (
    <a href={props.href} style={props.style ?? 'color:#0969da;'}>
      {props.children}
    </a>
  );
}

/** One label/value pair of a data table: the label is the row header, the value is monospaced and may wrap. */
export type Row = [label: string, value: string];

/** A data table: a caption, optional column headers, and one row per pair with the label as a row header. */
export function DataTable(props: { caption: string; columns?: [string, string]; rows: Row[] }) {
  return (
    <>
      <table style="width:100%;border-collapse:collapse;margin:0 0 16px;font-size:14px;">
        {NL}
        <caption style="text-align:left;font-weight:600;padding:0 0 6px;">{props.caption}</caption>
        {NL}
        {props.columns ? (
          <thead>
            <tr>
              {props.columns.map((c) => (
                <th scope="col" style={`${CELL}font-size:13px;color:#57606a;`}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
        ) : null}
        {NL}
        <tbody>
          {NL}
          {props.rows.map((row) => (
            <DataRow row={row} />
          ))}
        </tbody>
        {NL}
      </table>
      {NL}
    </>
  );
}

export function DataRow(props: { row: Row }) {
  const [label, value] = props.row;
  return (
    <>
      <tr>
        <th scope="row" style={`${CELL}width:30%;font-weight:600;word-break:break-all;`}>
          {label}
        </th>
        <td style={`${CELL}word-break:break-word;font-family:${MONO};`}>{value}</td>
      </tr>
      {NL}
    </>
  );
}

/** A rule, then the small print: one paragraph per child of {@link FooterLine}. */
export function Footer(props: { children?: Child }) {
  return (
    <>
      <hr style="margin:24px 0 12px;border:0;border-top:1px solid #d0d7de;" />
      {NL}
      {props.children}
    </>
  );
}

export function FooterLine(props: { children?: Child }) {
  return <Para style="margin:0 0 6px;font-size:12px;color:#57606a;">{props.children}</Para>;
}
