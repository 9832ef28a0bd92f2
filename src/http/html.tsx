/** The frame every HTML page of the Worker shares (the dashboard, /docs, the email pages, the dev mailbox). */
import { raw } from 'hono/html';
import type { FC, PropsWithChildren } from 'hono/jsx';

/**
 * A whole page: the doctype, which keeps browsers in standards mode and which JSX has no way to write, and
 * `<html lang="en">` around the head and body it is given.
 */
export const HtmlDocument: FC<PropsWithChildren> = ({ children }) => (
  <>
    {raw('<!doctype html>')}
    <html lang="en">{children}</html>
  </>
);
